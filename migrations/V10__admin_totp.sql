-- An optional second factor for admins: a TOTP secret (base32; NULL when not enrolled),
-- one waiting for its first code while an admin enrols, and the last time step a code
-- was accepted for, so no code works twice.
ALTER TABLE galley.admins
  ADD COLUMN totp_secret    text,
  ADD COLUMN totp_pending   text,
  ADD COLUMN totp_last_step bigint NOT NULL DEFAULT 0;
