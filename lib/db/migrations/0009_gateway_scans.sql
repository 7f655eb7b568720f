-- 0009_gateway_scans: what the gateway's scan endpoints need: indexes in
-- the keyset order of its lists, and the scan runs of every tenant counted
-- by state for the vigil_scan_jobs gauge.
SET LOCAL ROLE vigil_owner;
SET LOCAL search_path = vigil, pg_catalog;

-- GET .../findings: most severe first, then most recently seen, then id;
-- each page starts after the previous page's last (severity, last_seen,
-- id), read backwards on this index. The severity's rank is a smallint
-- column because under row-level security only leakproof operators may
-- bound an index scan, and the enum's comparisons are not leakproof: a
-- (severity, last_seen, id) bound would be a filter read from the first
-- row on, every page.
ALTER TABLE findings ADD COLUMN severity_rank smallint NOT NULL
	GENERATED ALWAYS AS (CASE severity WHEN 'info' THEN 0 WHEN 'low' THEN 1
		WHEN 'medium' THEN 2 WHEN 'high' THEN 3 WHEN 'critical' THEN 4 END) STORED;
CREATE INDEX findings_tenant_rank ON findings (tenant_id, severity_rank, last_seen, id);

-- GET .../scan-runs and .../reports: newest first, (created_at, id) keys.
CREATE INDEX scan_runs_tenant_created_id ON scan_runs (tenant_id, created_at, id);
CREATE INDEX reports_tenant_created_id ON reports (tenant_id, created_at, id);

-- Scan runs of every tenant by state, for the platform's metrics: the
-- request path's role sees no tenant's rows outside a tenant transaction.
-- Counts only, nothing that names a tenant.
CREATE FUNCTION scan_run_counts() RETURNS TABLE (state text, runs bigint)
	LANGUAGE sql STABLE SECURITY DEFINER SET search_path = vigil, pg_catalog
	AS $$ SELECT state, count(*) FROM scan_runs GROUP BY state $$;
REVOKE ALL ON FUNCTION scan_run_counts() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION scan_run_counts() TO vigil_app;
