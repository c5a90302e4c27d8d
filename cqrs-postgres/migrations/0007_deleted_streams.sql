-- Deleted streams (`StreamStore::delete_stream`): the stream row is closed, and the
-- append statements move only open rows, so an append to a deleted stream writes nothing
-- and is reported as `StoreError::StreamDeleted`. The stream's last event is its
-- tombstone (event type `$deleted`), written in the same transaction.
--
-- Run like 0001 with `search_path` set to the store's schema: nothing here may name a
-- schema. A nullable column with no default: no table rewrite.
ALTER TABLE streams ADD COLUMN deleted_at timestamptz;
