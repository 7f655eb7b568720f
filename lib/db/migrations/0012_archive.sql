-- 0012_archive: scan results older than the retention period leave the
-- database for cold storage (vigil-worker's "archive" task) and can come
-- back (its restore).
--
-- A run's findings and ingest batches are written, zstd-compressed, to an
-- object in cold storage; archived_runs indexes the object (its key under
-- the cold-storage root, SHA-256, sizes, counts), and the rows are deleted
-- in the same transaction that inserts the index row. scan_runs and
-- reports rows stay, so summaries (finding_counts, reports) remain
-- queryable; scan_runs.archived_at tells the API a run's findings are in
-- cold storage.
--
-- vigil_app still has no DELETE on findings or ingest_batches. Deleting a
-- run's rows goes through archive_purge(), which deletes exactly one run
-- of the transaction's tenant, only once that run has an index row, and
-- only when the rows it deletes are as many as the index says the object
-- holds. A plain DELETE grant would let any statement of any service
-- delete any finding of its tenant; the function bounds deletion to whole
-- runs that were archived. It cannot tell a real object from a claimed one
-- (the database never sees cold storage): that check is the worker's,
-- which writes, fsyncs and re-reads the object before it inserts the row.
-- archive_unindex() is the way back after a restore re-inserted the rows.
SET LOCAL ROLE vigil_owner;
SET LOCAL search_path = vigil, pg_catalog;

-- when the run's findings went to cold storage (NULL: they are in the
-- database); when they last came back (a restored run is archived again
-- only one retention period after its restore)
ALTER TABLE scan_runs ADD COLUMN archived_at timestamptz;
ALTER TABLE scan_runs ADD COLUMN restored_at timestamptz;

-- the sweep's candidates: finished runs still in the database, oldest first
CREATE INDEX scan_runs_archivable ON scan_runs (coalesce(finished_at, created_at))
	WHERE archived_at IS NULL AND state IN ('succeeded', 'failed', 'canceled');

-- One row per archived run: where its object is and what it holds.
CREATE TABLE archived_runs (
	tenant_id uuid NOT NULL,
	run_id uuid NOT NULL,
	archived_at timestamptz NOT NULL DEFAULT now(),
	-- relative to the cold-storage root: <tenant>/<yyyy>/<run>.jsonl.zst
	object_key text NOT NULL CHECK (object_key ~
		'^[0-9a-f-]{36}/[0-9]{4}/[0-9a-f-]{36}\.jsonl\.zst$'),
	sha256 bytea NOT NULL CHECK (length(sha256) = 32), -- of the object
	raw_bytes bigint NOT NULL CHECK (raw_bytes >= 0),
	compressed_bytes bigint NOT NULL CHECK (compressed_bytes >= 0),
	finding_count integer NOT NULL CHECK (finding_count >= 0),
	batch_count integer NOT NULL CHECK (batch_count >= 0),
	format_version smallint NOT NULL CHECK (format_version = 1),
	PRIMARY KEY (tenant_id, run_id),
	FOREIGN KEY (tenant_id, run_id) REFERENCES scan_runs (tenant_id, id) ON DELETE CASCADE
);

ALTER TABLE archived_runs ENABLE ROW LEVEL SECURITY;
ALTER TABLE archived_runs FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON archived_runs
	USING (tenant_id = (SELECT current_tenant()))
	WITH CHECK (tenant_id = (SELECT current_tenant()));
CREATE POLICY owner_all ON archived_runs TO vigil_owner USING (true) WITH CHECK (true);
GRANT SELECT, INSERT ON archived_runs TO vigil_app;

-- The archiver, after it inserted the index row of run p_run in a tenant
-- transaction: delete the run's findings and ingest batches, and mark the
-- run archived. Raises serialization_failure (the task retries and writes
-- the object again) when the rows are not what the index row counts.
CREATE FUNCTION archive_purge(p_run uuid)
	RETURNS TABLE (deleted_findings bigint, deleted_batches bigint)
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = vigil, pg_catalog
	AS $$
DECLARE
	v_tenant uuid := current_tenant();
	v_idx archived_runs;
BEGIN
	IF v_tenant IS NULL THEN
		RAISE EXCEPTION 'archive_purge needs a tenant transaction'
			USING ERRCODE = 'insufficient_privilege';
	END IF;
	SELECT * INTO v_idx FROM archived_runs a
	 WHERE a.tenant_id = v_tenant AND a.run_id = p_run;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'run % has no archive index row', p_run
			USING ERRCODE = 'insufficient_privilege';
	END IF;
	DELETE FROM findings f WHERE f.tenant_id = v_tenant AND f.run_id = p_run;
	GET DIAGNOSTICS deleted_findings = ROW_COUNT;
	DELETE FROM ingest_batches b WHERE b.tenant_id = v_tenant AND b.run_id = p_run;
	GET DIAGNOSTICS deleted_batches = ROW_COUNT;
	IF deleted_findings <> v_idx.finding_count OR deleted_batches <> v_idx.batch_count THEN
		RAISE EXCEPTION 'run %: % findings and % batches in the database, % and % in the archive',
			p_run, deleted_findings, deleted_batches, v_idx.finding_count, v_idx.batch_count
			USING ERRCODE = 'serialization_failure';
	END IF;
	UPDATE scan_runs r SET archived_at = v_idx.archived_at
	 WHERE r.tenant_id = v_tenant AND r.id = p_run;
	RETURN NEXT;
END
$$;

-- The restorer, after it inserted the archived rows again in a tenant
-- transaction: check they are all there, drop the index row and mark the
-- run restored. Returns false when the run had no index row.
CREATE FUNCTION archive_unindex(p_run uuid) RETURNS boolean
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = vigil, pg_catalog
	AS $$
DECLARE
	v_tenant uuid := current_tenant();
	v_idx archived_runs;
	v_f bigint;
	v_b bigint;
BEGIN
	IF v_tenant IS NULL THEN
		RAISE EXCEPTION 'archive_unindex needs a tenant transaction'
			USING ERRCODE = 'insufficient_privilege';
	END IF;
	SELECT * INTO v_idx FROM archived_runs a
	 WHERE a.tenant_id = v_tenant AND a.run_id = p_run FOR UPDATE;
	IF NOT FOUND THEN
		RETURN false;
	END IF;
	SELECT count(*) INTO v_f FROM findings f
	 WHERE f.tenant_id = v_tenant AND f.run_id = p_run;
	SELECT count(*) INTO v_b FROM ingest_batches b
	 WHERE b.tenant_id = v_tenant AND b.run_id = p_run;
	IF v_f <> v_idx.finding_count OR v_b <> v_idx.batch_count THEN
		RAISE EXCEPTION 'run %: % findings and % batches restored, the archive holds % and %',
			p_run, v_f, v_b, v_idx.finding_count, v_idx.batch_count
			USING ERRCODE = 'data_exception';
	END IF;
	DELETE FROM archived_runs a WHERE a.tenant_id = v_tenant AND a.run_id = p_run;
	UPDATE scan_runs r SET archived_at = NULL, restored_at = now()
	 WHERE r.tenant_id = v_tenant AND r.id = p_run;
	RETURN true;
END
$$;

-- The sweep, across tenants (p_tenant NULL) or for one: finished runs
-- whose findings are still in the database, finished (or, without a
-- finish time, created) more than p_retention_s seconds ago, and not
-- restored within that time; oldest first.
CREATE FUNCTION archive_candidates(p_tenant uuid, p_retention_s bigint, p_limit integer)
	RETURNS TABLE (tenant_id uuid, run_id uuid)
	LANGUAGE sql STABLE SECURITY DEFINER SET search_path = vigil, pg_catalog
	AS $$
	SELECT r.tenant_id, r.id FROM scan_runs r
	 WHERE r.archived_at IS NULL
	   AND r.state IN ('succeeded', 'failed', 'canceled')
	   AND (p_tenant IS NULL OR r.tenant_id = p_tenant)
	   AND coalesce(r.finished_at, r.created_at)
	       < now() - make_interval(secs => greatest(p_retention_s, 0))
	   AND (r.restored_at IS NULL
		OR r.restored_at < now() - make_interval(secs => greatest(p_retention_s, 0)))
	 ORDER BY coalesce(r.finished_at, r.created_at), r.id
	 LIMIT least(greatest(coalesce(p_limit, 500), 1), 10000)
$$;

-- `vigil-worker archive restore RUN_ID`: the tenant of an archived run.
CREATE FUNCTION archived_run_tenant(p_run uuid) RETURNS uuid
	LANGUAGE sql STABLE SECURITY DEFINER SET search_path = vigil, pg_catalog
	AS $$ SELECT a.tenant_id FROM archived_runs a WHERE a.run_id = p_run $$;

-- When a sweep was last started, for the whole platform: each worker asks
-- archive_sweep_claim() now and then, and the one that gets true enqueues
-- the sweep, so there is one sweep per interval however many workers run.
-- Not tenant data: only the owner's policy, and no grant but the function.
CREATE TABLE archive_sweeps (
	singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
	last_at timestamptz
);
INSERT INTO archive_sweeps DEFAULT VALUES;
ALTER TABLE archive_sweeps ENABLE ROW LEVEL SECURITY;
ALTER TABLE archive_sweeps FORCE ROW LEVEL SECURITY;
CREATE POLICY owner_all ON archive_sweeps TO vigil_owner USING (true) WITH CHECK (true);

CREATE FUNCTION archive_sweep_claim(p_interval_s bigint) RETURNS boolean
	LANGUAGE sql SECURITY DEFINER SET search_path = vigil, pg_catalog
	AS $$
	WITH claimed AS (
		UPDATE archive_sweeps SET last_at = now()
		 WHERE last_at IS NULL
		    OR last_at <= now() - make_interval(secs => greatest(p_interval_s, 1))
		RETURNING 1)
	SELECT EXISTS (SELECT 1 FROM claimed)
$$;

REVOKE ALL ON FUNCTION archive_purge(uuid), archive_unindex(uuid),
		       archive_candidates(uuid, bigint, integer),
		       archived_run_tenant(uuid), archive_sweep_claim(bigint)
	FROM PUBLIC;
GRANT EXECUTE ON FUNCTION archive_purge(uuid), archive_unindex(uuid),
		      archive_candidates(uuid, bigint, integer),
		      archived_run_tenant(uuid), archive_sweep_claim(bigint)
	TO vigil_app;
