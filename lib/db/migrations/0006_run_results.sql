-- 0006_run_results: what the worker records when it finalizes a run: the
-- counts of the run's findings by severity, and at most one run report
-- per run, so a finalize or report task delivered twice makes one report.
SET LOCAL ROLE vigil_owner;
SET LOCAL search_path = vigil, pg_catalog;

ALTER TABLE scan_runs ADD COLUMN finding_counts jsonb NOT NULL DEFAULT '{}';

CREATE UNIQUE INDEX reports_one_run_report ON reports (tenant_id, run_id)
	WHERE kind = 'run';
