-- 0002_tenancy: tenants, users, role bindings and API keys, with row-level
-- security on vigil.tenant_id.
SET LOCAL ROLE vigil_owner;
SET LOCAL search_path = vigil, pg_catalog;

-- The tenant of the current transaction (set by vg_db_begin), or NULL.
-- Used as (SELECT current_tenant()) in policies so it is evaluated once
-- per query. A malformed value is an error, never a match.
CREATE FUNCTION current_tenant() RETURNS uuid
	LANGUAGE sql STABLE PARALLEL SAFE
	AS $$ SELECT NULLIF(pg_catalog.current_setting('vigil.tenant_id', true), '')::uuid $$;
GRANT EXECUTE ON FUNCTION current_tenant() TO vigil_app, vigil_platform;

-- One row per Tenant resource, keyed by its metadata.uid: a Tenant deleted
-- and created again under the same name is a new tenant.
CREATE TABLE tenants (
	id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	k8s_uid uuid NOT NULL UNIQUE,
	name text NOT NULL
		CHECK (name ~ '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$' AND length(name) <= 63),
	display_name text NOT NULL DEFAULT '' CHECK (length(display_name) <= 128),
	namespace text NOT NULL DEFAULT '' CHECK (length(namespace) <= 63),
	state text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'archived')),
	created_at timestamptz NOT NULL DEFAULT now(),
	updated_at timestamptz NOT NULL DEFAULT now(),
	archived_at timestamptz,
	CONSTRAINT tenants_archived_at CHECK ((state = 'archived') = (archived_at IS NOT NULL))
);
-- names are unique among live tenants; archived ones keep theirs
CREATE UNIQUE INDEX tenants_active_name ON tenants (name) WHERE state = 'active';

ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_self ON tenants FOR SELECT
	USING (id = (SELECT current_tenant()));
CREATE POLICY owner_all ON tenants TO vigil_owner USING (true) WITH CHECK (true);
GRANT SELECT ON tenants TO vigil_app;

-- People, as the gateway's authenticator names them (OIDC subject or
-- Kubernetes user name). Global: one person may work for several tenants.
-- A tenant sees the users bound to it.
CREATE TABLE users (
	id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	subject text NOT NULL UNIQUE CHECK (length(subject) BETWEEN 1 AND 256),
	email text NOT NULL DEFAULT '',
	display_name text NOT NULL DEFAULT '',
	disabled boolean NOT NULL DEFAULT false,
	created_at timestamptz NOT NULL DEFAULT now(),
	updated_at timestamptz NOT NULL DEFAULT now()
);

-- A user's role in one tenant, or (tenant_id NULL) platform-admin.
CREATE TABLE role_bindings (
	id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	tenant_id uuid REFERENCES tenants (id),
	role text NOT NULL
		CHECK (role IN ('admin', 'analyst', 'viewer', 'agent', 'platform-admin')),
	created_at timestamptz NOT NULL DEFAULT now(),
	created_by text NOT NULL DEFAULT '',
	CONSTRAINT role_bindings_scope CHECK ((role = 'platform-admin') = (tenant_id IS NULL)),
	CONSTRAINT role_bindings_one_role UNIQUE NULLS NOT DISTINCT (user_id, tenant_id)
);
CREATE INDEX role_bindings_tenant ON role_bindings (tenant_id);

ALTER TABLE role_bindings ENABLE ROW LEVEL SECURITY;
ALTER TABLE role_bindings FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON role_bindings
	USING (tenant_id = (SELECT current_tenant()))
	WITH CHECK (tenant_id = (SELECT current_tenant()));
CREATE POLICY owner_all ON role_bindings TO vigil_owner USING (true) WITH CHECK (true);
GRANT SELECT, INSERT, DELETE, UPDATE (role) ON role_bindings TO vigil_app;

ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE users FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_members ON users FOR SELECT
	USING (EXISTS (SELECT 1 FROM role_bindings b
		       WHERE b.user_id = users.id
			 AND b.tenant_id = (SELECT current_tenant())));
CREATE POLICY owner_all ON users TO vigil_owner USING (true) WITH CHECK (true);
GRANT SELECT ON users TO vigil_app;

-- API keys: only the SHA-256 of the key is stored. The prefix (shown to
-- people, e.g. in key lists) finds it; the hash proves it.
CREATE TABLE api_keys (
	id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	tenant_id uuid NOT NULL REFERENCES tenants (id),
	user_id uuid REFERENCES users (id) ON DELETE SET NULL,
	name text NOT NULL DEFAULT '' CHECK (length(name) <= 128),
	prefix text NOT NULL UNIQUE CHECK (length(prefix) BETWEEN 4 AND 32),
	hash bytea NOT NULL UNIQUE CHECK (length(hash) = 32),
	role text NOT NULL CHECK (role IN ('admin', 'analyst', 'viewer', 'agent')),
	scopes text[] NOT NULL DEFAULT '{}',
	created_at timestamptz NOT NULL DEFAULT now(),
	created_by text NOT NULL DEFAULT '',
	expires_at timestamptz,
	revoked_at timestamptz,
	last_used_at timestamptz
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id);

ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON api_keys
	USING (tenant_id = (SELECT current_tenant()))
	WITH CHECK (tenant_id = (SELECT current_tenant()));
CREATE POLICY owner_all ON api_keys TO vigil_owner USING (true) WITH CHECK (true);
-- every column but the hash can be read back
GRANT SELECT (id, tenant_id, user_id, name, prefix, role, scopes, created_at,
	      created_by, expires_at, revoked_at, last_used_at),
      INSERT (tenant_id, user_id, name, prefix, hash, role, scopes, created_by,
	      expires_at),
      UPDATE (name, revoked_at, last_used_at)
	ON api_keys TO vigil_app;

-- ---------------------------------------------------------------------
-- Functions that cross tenants. SECURITY DEFINER: they run as vigil_owner
-- (whose owner_all policies see every row) with a fixed search_path, and
-- EXECUTE is granted role by role.
-- ---------------------------------------------------------------------

-- The operator: create or update the row of a Tenant resource; returns its
-- id. An archived row is returned unchanged (the resource is gone).
CREATE FUNCTION tenant_upsert(p_k8s_uid uuid, p_name text, p_display_name text,
			      p_namespace text) RETURNS uuid
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = vigil, pg_catalog
	AS $$
DECLARE
	v_id uuid;
BEGIN
	INSERT INTO tenants AS t (k8s_uid, name, display_name, namespace)
	VALUES (p_k8s_uid, p_name, coalesce(p_display_name, ''), coalesce(p_namespace, ''))
	ON CONFLICT (k8s_uid) DO UPDATE
		SET name = EXCLUDED.name, display_name = EXCLUDED.display_name,
		    namespace = EXCLUDED.namespace, updated_at = now()
		WHERE t.state = 'active'
		  AND (t.name, t.display_name, t.namespace)
		      IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.display_name, EXCLUDED.namespace)
	RETURNING id INTO v_id;
	IF v_id IS NULL THEN -- unchanged
		SELECT id INTO v_id FROM tenants WHERE k8s_uid = p_k8s_uid;
	END IF;
	RETURN v_id;
END
$$;

-- The operator, when a Tenant resource is deleted: archive its row (kept
-- with its data for retention). Returns the id, NULL if there is no row.
CREATE FUNCTION tenant_archive(p_k8s_uid uuid) RETURNS uuid
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = vigil, pg_catalog
	AS $$
DECLARE
	v_id uuid;
BEGIN
	UPDATE tenants SET state = 'archived', archived_at = now(), updated_at = now()
	 WHERE k8s_uid = p_k8s_uid AND state = 'active'
	RETURNING id INTO v_id;
	IF v_id IS NULL THEN
		SELECT id INTO v_id FROM tenants WHERE k8s_uid = p_k8s_uid;
	END IF;
	RETURN v_id;
END
$$;

-- Platform admins (through the gateway) and the operator: every tenant.
CREATE FUNCTION tenant_list() RETURNS SETOF tenants
	LANGUAGE sql STABLE SECURITY DEFINER SET search_path = vigil, pg_catalog
	AS $$ SELECT * FROM tenants ORDER BY name, created_at $$;

-- The gateway: the id of the active tenant called `p_name`, or NULL.
CREATE FUNCTION tenant_lookup(p_name text) RETURNS uuid
	LANGUAGE sql STABLE SECURITY DEFINER SET search_path = vigil, pg_catalog
	AS $$ SELECT id FROM tenants WHERE name = p_name AND state = 'active' $$;

-- The gateway at sign-in: the user with this subject, created on first use.
CREATE FUNCTION user_ensure(p_subject text, p_email text, p_display_name text)
	RETURNS uuid
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = vigil, pg_catalog
	AS $$
DECLARE
	v_id uuid;
BEGIN
	INSERT INTO users AS u (subject, email, display_name)
	VALUES (p_subject, coalesce(p_email, ''), coalesce(p_display_name, ''))
	ON CONFLICT (subject) DO UPDATE
		SET email = EXCLUDED.email, display_name = EXCLUDED.display_name,
		    updated_at = now()
		WHERE (u.email, u.display_name) IS DISTINCT FROM (EXCLUDED.email, EXCLUDED.display_name)
	RETURNING id INTO v_id;
	IF v_id IS NULL THEN
		SELECT id INTO v_id FROM users WHERE subject = p_subject;
	END IF;
	RETURN v_id;
END
$$;

-- The gateway's authorisation: every role of an enabled user, in active
-- tenants (tenant_id NULL: platform-admin).
CREATE FUNCTION user_bindings(p_user_id uuid)
	RETURNS TABLE (tenant_id uuid, tenant_name text, role text)
	LANGUAGE sql STABLE SECURITY DEFINER SET search_path = vigil, pg_catalog
	AS $$
	SELECT b.tenant_id, t.name, b.role
	  FROM role_bindings b
	  JOIN users u ON u.id = b.user_id AND NOT u.disabled
	  LEFT JOIN tenants t ON t.id = b.tenant_id
	 WHERE b.user_id = p_user_id
	   AND (b.tenant_id IS NULL OR t.state = 'active')
	 ORDER BY t.name NULLS FIRST
$$;

-- Bootstrap and management of platform admins (not through tenant RLS).
CREATE FUNCTION platform_admin_grant(p_subject text, p_by text) RETURNS uuid
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = vigil, pg_catalog
	AS $$
DECLARE
	v_user uuid := user_ensure(p_subject, NULL, NULL);
BEGIN
	INSERT INTO role_bindings (user_id, tenant_id, role, created_by)
	VALUES (v_user, NULL, 'platform-admin', coalesce(p_by, ''))
	ON CONFLICT ON CONSTRAINT role_bindings_one_role DO NOTHING;
	RETURN v_user;
END
$$;

CREATE FUNCTION platform_admin_revoke(p_subject text) RETURNS boolean
	LANGUAGE sql SECURITY DEFINER SET search_path = vigil, pg_catalog
	AS $$
	WITH gone AS (
		DELETE FROM role_bindings b USING users u
		 WHERE u.id = b.user_id AND u.subject = p_subject AND b.tenant_id IS NULL
		RETURNING 1)
	SELECT EXISTS (SELECT 1 FROM gone)
$$;

-- The gateway's authentication: the live key with this SHA-256, if any.
CREATE FUNCTION api_key_lookup(p_hash bytea)
	RETURNS TABLE (id uuid, tenant_id uuid, user_id uuid, role text,
		       scopes text[], expires_at timestamptz)
	LANGUAGE sql STABLE SECURITY DEFINER SET search_path = vigil, pg_catalog
	AS $$
	SELECT k.id, k.tenant_id, k.user_id, k.role, k.scopes, k.expires_at
	  FROM api_keys k
	  JOIN tenants t ON t.id = k.tenant_id AND t.state = 'active'
	 WHERE k.hash = p_hash
	   AND k.revoked_at IS NULL
	   AND (k.expires_at IS NULL OR k.expires_at > now())
$$;

GRANT EXECUTE ON FUNCTION tenant_upsert(uuid, text, text, text),
		      tenant_archive(uuid),
		      platform_admin_grant(text, text),
		      platform_admin_revoke(text)
	TO vigil_platform;
GRANT EXECUTE ON FUNCTION tenant_list(), tenant_lookup(text) TO vigil_platform, vigil_app;
GRANT EXECUTE ON FUNCTION user_ensure(text, text, text),
		      user_bindings(uuid),
		      api_key_lookup(bytea)
	TO vigil_app;
