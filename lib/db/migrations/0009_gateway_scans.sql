-- 0009_gateway_scans: what the gateway's scan endpoints need: indexes in
-- the keyset order of its lists, and the scan runs of every tenant counted
-- by state for the vigil_scan_jobs gauge.
SET LOCAL ROLE vigil_owner;
SET LOCAL search_path = vigil, pg_catalog;

-- GET .../findings: most severe first, then most recently seen, then id;
-- each page starts after the previous page's last (severity, last_seen,
-- id), read backwards on this index.
CREATE INDEX findings_tenant_rank ON findings (tenant_id, severity, last_seen, id);

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
