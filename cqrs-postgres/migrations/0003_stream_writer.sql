-- Per-stream order in the global log.
--
-- Run like 0001 with `search_path` set to the store's schema: nothing here may name a
-- schema.
--
-- The global log is ordered by the writer's transaction id, then by position (see
-- `read_all`). A transaction that took its id early (other writes first, in the caller's
-- transaction) and then appends on top of a version written and committed by a younger
-- transaction would place its event before that version in the log: a subscriber would
-- see the stream's versions go backwards. So each stream row remembers the transaction
-- that wrote its current version, and an append from an older transaction is refused
-- (`StoreError::StaleTransaction`: retry in a new transaction).
--
-- Existing rows get 0 (a constant default: no table rewrite): no transaction is older,
-- so their next append is never refused and records its writer. Rows inserted later get
-- their writer by default; the append statements also set it on every update.
ALTER TABLE streams ADD COLUMN writer xid8 NOT NULL DEFAULT '0';
ALTER TABLE streams ALTER COLUMN writer SET DEFAULT pg_current_xact_id();

-- The PL/pgSQL append of 0001 has not been called by the store since the append became
-- one statement (`Sql::append`), and it does not maintain `writer`: remove it rather than
-- keep a second, wrong way to append.
DROP FUNCTION append_events(text, text, bigint, uuid[], text[], integer[], jsonb[], jsonb[]);
