-- A pre-authorised id is bound to a secret only its device holds (SHA-256, hex): enrolling as
-- it needs the secret. Ids pre-authorised before this column existed have none and must be
-- pre-authorised again (which issues one) before they can enroll.
ALTER TABLE devices ADD COLUMN preauth_secret_hash TEXT COLLATE "C";
