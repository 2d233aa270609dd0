-- When an account was last enabled again after being disabled: a certificate issued
-- before it is never handed out again at sign-in, since phones that learned of the
-- disabling (the catalog lists the account's devices) refuse what it vouches for.
ALTER TABLE users ADD COLUMN enabled_at TEXT;
