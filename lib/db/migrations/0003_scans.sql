-- 0003_scans: scan runs, ingest batches, findings and reports; all tenant
-- data under row-level security.
SET LOCAL ROLE vigil_owner;
SET LOCAL search_path = vigil, pg_catalog;

CREATE TYPE severity AS ENUM ('info', 'low', 'medium', 'high', 'critical');
GRANT USAGE ON TYPE severity TO vigil_app;

-- One run of a ScanPolicy (one agent Job, possibly Indexed into shards).
CREATE TABLE scan_runs (
	id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	tenant_id uuid NOT NULL REFERENCES tenants (id),
	policy_namespace text NOT NULL DEFAULT '',
	policy_name text NOT NULL DEFAULT '',
	policy_uid text NOT NULL DEFAULT '',
	job_name text NOT NULL DEFAULT '',
	trigger text NOT NULL DEFAULT 'schedule'
		CHECK (trigger IN ('schedule', 'manual', 'once')),
	state text NOT NULL DEFAULT 'pending'
		CHECK (state IN ('pending', 'running', 'succeeded', 'failed', 'canceled')),
	shards integer NOT NULL DEFAULT 1 CHECK (shards >= 1),
	shards_done integer NOT NULL DEFAULT 0 CHECK (shards_done >= 0),
	created_at timestamptz NOT NULL DEFAULT now(),
	started_at timestamptz,
	finished_at timestamptz,
	error text NOT NULL DEFAULT '',
	-- target of the (tenant_id, run_id) foreign keys below, which keep a
	-- tenant's findings from pointing at another tenant's run
	CONSTRAINT scan_runs_tenant_id UNIQUE (tenant_id, id)
);
CREATE INDEX scan_runs_tenant_created ON scan_runs (tenant_id, created_at DESC);
-- recording the same Job twice yields one run
CREATE UNIQUE INDEX scan_runs_tenant_job ON scan_runs (tenant_id, job_name)
	WHERE job_name <> '';

-- Result batches already ingested: at-least-once delivery from the queue
-- meets this primary key, so a redelivered batch is recognised and skipped.
CREATE TABLE ingest_batches (
	tenant_id uuid NOT NULL,
	run_id uuid NOT NULL,
	batch_id text NOT NULL CHECK (length(batch_id) BETWEEN 1 AND 128),
	shard integer,
	findings integer NOT NULL DEFAULT 0,
	received_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (tenant_id, run_id, batch_id),
	FOREIGN KEY (tenant_id, run_id) REFERENCES scan_runs (tenant_id, id) ON DELETE CASCADE
);

-- One issue found on one host/port by one run. The fingerprint names the
-- issue stably across runs (scanner, host, port, check), so the same issue
-- seen twice in a run is one row (upsert on the unique key) and the brain
-- can follow it from run to run.
CREATE TABLE findings (
	id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	tenant_id uuid NOT NULL REFERENCES tenants (id),
	run_id uuid NOT NULL,
	batch_id text NOT NULL CHECK (length(batch_id) BETWEEN 1 AND 128),
	host text NOT NULL CHECK (length(host) BETWEEN 1 AND 253),
	port integer CHECK (port BETWEEN 0 AND 65535), -- NULL: host-level finding
	protocol text NOT NULL DEFAULT 'tcp' CHECK (protocol IN ('tcp', 'udp')),
	scanner text NOT NULL CHECK (length(scanner) BETWEEN 1 AND 64),
	severity severity NOT NULL,
	fingerprint text NOT NULL CHECK (length(fingerprint) BETWEEN 1 AND 128),
	title text NOT NULL DEFAULT '',
	evidence jsonb NOT NULL DEFAULT '{}',
	state text NOT NULL DEFAULT 'open'
		CHECK (state IN ('open', 'resolved', 'accepted', 'false_positive')),
	first_seen timestamptz NOT NULL DEFAULT now(),
	last_seen timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT findings_seen CHECK (last_seen >= first_seen),
	CONSTRAINT findings_run_fingerprint UNIQUE (tenant_id, run_id, fingerprint),
	FOREIGN KEY (tenant_id, run_id) REFERENCES scan_runs (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX findings_tenant_fingerprint ON findings (tenant_id, fingerprint, last_seen DESC);
CREATE INDEX findings_tenant_severity ON findings (tenant_id, severity, last_seen DESC);
CREATE INDEX findings_tenant_host ON findings (tenant_id, host);

-- Reports the brain generates, per run (run_id) or across runs (NULL).
CREATE TABLE reports (
	id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	tenant_id uuid NOT NULL REFERENCES tenants (id),
	run_id uuid,
	kind text NOT NULL CHECK (kind IN ('run', 'diff', 'trend', 'summary')),
	format text NOT NULL DEFAULT 'json'
		CHECK (format IN ('json', 'html', 'markdown', 'csv', 'pdf')),
	state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'ready', 'failed')),
	summary jsonb NOT NULL DEFAULT '{}',
	content bytea,
	error text NOT NULL DEFAULT '',
	created_at timestamptz NOT NULL DEFAULT now(),
	completed_at timestamptz,
	FOREIGN KEY (tenant_id, run_id) REFERENCES scan_runs (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX reports_tenant_created ON reports (tenant_id, created_at DESC);

DO $$
DECLARE
	t text;
BEGIN
	FOREACH t IN ARRAY ARRAY['scan_runs', 'ingest_batches', 'findings', 'reports'] LOOP
		EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
		EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
		EXECUTE format('CREATE POLICY tenant_isolation ON %I '
			       'USING (tenant_id = (SELECT current_tenant())) '
			       'WITH CHECK (tenant_id = (SELECT current_tenant()))', t);
		EXECUTE format('CREATE POLICY owner_all ON %I TO vigil_owner '
			       'USING (true) WITH CHECK (true)', t);
	END LOOP;
END
$$;

-- no DELETE yet: retention comes with its own migration and grants
GRANT SELECT, INSERT, UPDATE ON scan_runs, findings, reports TO vigil_app;
GRANT SELECT, INSERT ON ingest_batches TO vigil_app;
