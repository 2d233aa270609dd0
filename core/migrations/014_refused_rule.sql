-- The rule of the server's refusal, for a change the server refused itself and kept the
-- refusal of (NULL for a change dropped because it built on one, for a message the server
-- refused whole, and for refusals kept before this): a change refused for good
-- (`rules::Rule::is_final`) that a teammate's phone hands over again is refused again on
-- this phone, as the server would refuse it.
ALTER TABLE refusals ADD COLUMN rule TEXT;
