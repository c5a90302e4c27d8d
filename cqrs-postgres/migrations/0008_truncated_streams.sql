-- Truncated streams (`StreamStore::truncate_stream`): the first version a stream keeps
-- once its older events were removed (a snapshot stands for them). A read from before it
-- is `StoreError::Truncated`. A read looks it up only when the first event it finds is
-- not the one asked for, so reads of whole streams pay nothing for it.
--
-- Run like 0001 with `search_path` set to the store's schema: nothing here may name a
-- schema. A nullable column with no default: no table rewrite.
ALTER TABLE streams ADD COLUMN truncated_before bigint;
