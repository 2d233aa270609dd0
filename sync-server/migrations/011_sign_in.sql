-- Failed sign-ins and the addresses each name signed in from, in the database, so that
-- every server process sharing it holds an attempt to the same delays (before, each
-- process counted for itself, and N processes behind a balancer allowed N times the
-- guesses). A scope is 'pair' (key: name, a newline, address), 'address' or 'name'.
-- Times are Unix milliseconds.
CREATE TABLE sign_in_failures (
    scope   TEXT NOT NULL,
    key     TEXT NOT NULL,
    count   INTEGER NOT NULL,
    pending INTEGER NOT NULL,
    last_at INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
) STRICT, WITHOUT ROWID;

CREATE INDEX sign_in_failures_by_age ON sign_in_failures (last_at);

CREATE TABLE sign_in_known (
    username TEXT NOT NULL,
    address  TEXT NOT NULL,
    at       INTEGER NOT NULL,
    PRIMARY KEY (username, address)
) STRICT, WITHOUT ROWID;

CREATE INDEX sign_in_known_by_age ON sign_in_known (at);
