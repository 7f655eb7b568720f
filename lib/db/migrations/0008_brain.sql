-- 0008_brain: what vigil-brain needs to turn a run's pending report into
-- the generated one.
--
-- The worker records each finished run's report as a pending row (kind
-- 'run', at most one per run); the brain claims pending rows, queues one
-- task per report in its own Redis queue, and writes the result back into
-- the same row: summary = the JSON report, content = the HTML report
-- (content_type says so), state 'ready' or 'failed'. One row per run, so a
-- report generated twice is still one report.
SET LOCAL ROLE vigil_owner;
SET LOCAL search_path = vigil, pg_catalog;

-- the request that finished the run, carried into the brain's task and logs
ALTER TABLE reports ADD COLUMN request_id text NOT NULL DEFAULT ''
	CHECK (length(request_id) <= 128);
-- when the brain last queued the report's task (NULL: not yet)
ALTER TABLE reports ADD COLUMN queued_at timestamptz;
-- the media type of content ('' while there is none)
ALTER TABLE reports ADD COLUMN content_type text NOT NULL DEFAULT ''
	CHECK (length(content_type) <= 128);

-- the brain's sweep for pending reports, across tenants
CREATE INDEX reports_pending ON reports (created_at) WHERE state = 'pending';
-- previous runs of a policy (diff, trend)
CREATE INDEX scan_runs_tenant_policy ON scan_runs
	(tenant_id, policy_uid, policy_namespace, policy_name, created_at DESC);

-- The brain: claim up to p_limit pending run reports not queued yet, or
-- queued more than p_requeue_after_s seconds ago and still pending (their
-- task was lost), marking them queued. SKIP LOCKED: replicas sweeping at
-- once claim different rows. Returns no report content, only what names
-- the task: tenant, run and request id.
CREATE FUNCTION report_requests_claim(p_limit integer, p_requeue_after_s integer)
	RETURNS TABLE (tenant_id uuid, run_id uuid, request_id text)
	LANGUAGE sql SECURITY DEFINER SET search_path = vigil, pg_catalog
	AS $$
	UPDATE reports r SET queued_at = now()
	 WHERE r.id IN (SELECT p.id FROM reports p
			 WHERE p.state = 'pending' AND p.kind = 'run'
			   AND p.run_id IS NOT NULL
			   AND (p.queued_at IS NULL
				OR p.queued_at < now() - make_interval(
					secs => greatest(coalesce(p_requeue_after_s, 600), 1)))
			 ORDER BY p.created_at
			 LIMIT least(greatest(coalesce(p_limit, 100), 1), 1000)
			 FOR UPDATE SKIP LOCKED)
	RETURNING r.tenant_id, r.run_id, r.request_id
$$;

GRANT EXECUTE ON FUNCTION report_requests_claim(integer, integer) TO vigil_app;
