-- 0013_report_encoding: report content may be stored compressed.
--
-- vigil-brain stores a run report's HTML as one zstd frame; the encoding
-- says how the bytes in reports.content are coded, so readers can send
-- them as they are (Content-Encoding: zstd) or decode them first. Rows
-- written before this migration, and content stored as it is, are
-- 'identity'.
SET LOCAL ROLE vigil_owner;
SET LOCAL search_path = vigil, pg_catalog;

ALTER TABLE reports ADD COLUMN content_encoding text NOT NULL
	DEFAULT 'identity' CHECK (content_encoding IN ('identity', 'zstd'));
