-- Personal data, sealed per subject (crypto-shredding, `cqrs_core::personal`).
--
-- `subject_keys`: one row per subject whose personal data the store holds, with its data
-- key wrapped by the application's key-encryption key; written in the transaction that
-- appends the subject's first sealed event. `forget_subject` destroys the key (`wrapped`
-- set to NULL, `forgotten_at` set): from then on the subject's sealed fields read as
-- their placeholders, and new personal data about it is refused.
--
-- `key_check`: one row, a known data key wrapped by the key-encryption key the store first
-- ran with, so that a store started with another one says so at once.
--
-- `events_personal` (and its twin on the archive): finds the events that hold a subject's
-- sealed fields, for `forget_subject` to drop the snapshots of their streams. Partial:
-- only events with personal data are in it.
--
-- Run like 0001 with `search_path` set to the store's schema: nothing here may name a
-- schema.
CREATE TABLE subject_keys (
    subject      text        PRIMARY KEY,
    wrapped      bytea,
    created_at   timestamptz NOT NULL DEFAULT now(),
    forgotten_at timestamptz,
    CONSTRAINT subject_keys_forgotten_has_no_key CHECK ((wrapped IS NULL) = (forgotten_at IS NOT NULL))
);

CREATE TABLE key_check (
    one         boolean PRIMARY KEY DEFAULT true CHECK (one),
    check_value bytea   NOT NULL
);

CREATE INDEX events_personal ON events USING gin ((data -> '$personal') jsonb_path_ops)
    WHERE data ? '$personal';
CREATE INDEX events_archive_personal ON events_archive USING gin ((data -> '$personal') jsonb_path_ops)
    WHERE data ? '$personal';
