-- psql session driven by psql_session.sh, which runs it from a scratch
-- directory (so the \copy file names below are relative to it) and checks
-- the output. Objects are prefixed psql_ so other sessions can share the db.

DROP TABLE IF EXISTS psql_items;
CREATE TABLE psql_items (id int PRIMARY KEY, name text NOT NULL, qty int);
INSERT INTO psql_items VALUES (1, 'apple', 3), (2, 'banana', NULL);

-- \copy is COPY FROM STDIN / TO STDOUT with psql moving the file contents.
\copy psql_items from 'psql_in.csv' with (format csv, header)
\copy (SELECT id, name, qty FROM psql_items ORDER BY id) to 'psql_out.csv' with (format csv, header)

\d psql_items

\pset format unaligned
\pset footer off

-- psql splits this line and sends three separate Query messages ...
UPDATE psql_items SET qty = qty + 1 WHERE id = 1; DELETE FROM psql_items WHERE id = 4; SELECT count(*) AS remaining FROM psql_items;
-- ... whereas \; keeps both statements in one Query message with two result sets.
SELECT 'multi' AS first_result \; SELECT 'statement' AS second_result;

SELECT max(id) AS max_id, sum(qty) AS total_qty FROM psql_items \gset
\echo gset: max_id=:max_id total_qty=:total_qty

\pset null '<NULL>'
SELECT id, name, qty FROM psql_items WHERE id = :max_id OR qty IS NULL ORDER BY id;

DROP TABLE psql_items;
