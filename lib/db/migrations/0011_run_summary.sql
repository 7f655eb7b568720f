-- 0011_run_summary: what the operator shows in a ScanPolicy's status about
-- the run of one of its Jobs: the run's state, its counts by severity and
-- its open ports. A SECURITY DEFINER function for vigil_platform, which
-- reads no tenant table directly.
SET LOCAL ROLE vigil_owner;
SET LOCAL search_path = vigil, pg_catalog;

CREATE FUNCTION run_summary(p_tenant uuid, p_job text)
	RETURNS TABLE (state text, finding_counts jsonb, open_ports bigint)
	LANGUAGE sql STABLE SECURITY DEFINER SET search_path = vigil, pg_catalog
	AS $$
	SELECT r.state, r.finding_counts,
	       (SELECT count(*) FROM findings f
		 WHERE f.tenant_id = r.tenant_id AND f.run_id = r.id
		   AND f.scanner = 'tcp' AND f.evidence->>'check' = 'open')
	  FROM scan_runs r
	 WHERE r.tenant_id = p_tenant AND r.job_name = p_job
$$;
REVOKE ALL ON FUNCTION run_summary(uuid, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION run_summary(uuid, text) TO vigil_platform;
