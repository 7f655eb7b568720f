-- 0005_emergency_stop: the platform-wide emergency stop, one row. Not
-- tenant data (it halts every tenant's scans), so no row-level security;
-- the gateway lets only platform admins change it and audits each change
-- with audit_append_platform().
SET LOCAL ROLE vigil_owner;
SET LOCAL search_path = vigil, pg_catalog;

CREATE TABLE emergency_stop (
	singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
	engaged boolean NOT NULL DEFAULT false,
	reason text NOT NULL DEFAULT '',
	changed_by text NOT NULL DEFAULT '',
	changed_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO emergency_stop DEFAULT VALUES;

GRANT SELECT, UPDATE (engaged, reason, changed_by, changed_at) ON emergency_stop TO vigil_app;
GRANT SELECT ON emergency_stop TO vigil_platform;
