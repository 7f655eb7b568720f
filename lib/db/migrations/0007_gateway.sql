-- 0007_gateway: what the gateway's API needs beyond schema v1: password
-- credentials, API keys found by their public prefix, the platform's audit
-- chain for readers, users created and found by subject, and tenant
-- upserts by platform admins through the API.
SET LOCAL ROLE vigil_owner;
SET LOCAL search_path = vigil, pg_catalog;

-- argon2id hashes (encoded form) of users who sign in with a password.
-- vigil_app has no privilege on the table: it reaches a hash only through
-- user_password_get, and sets one only when creating a user.
CREATE TABLE user_credentials (
	user_id uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
	password_hash text NOT NULL CHECK (length(password_hash) BETWEEN 1 AND 512),
	updated_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE user_credentials ENABLE ROW LEVEL SECURITY;
ALTER TABLE user_credentials FORCE ROW LEVEL SECURITY;
CREATE POLICY owner_all ON user_credentials TO vigil_owner USING (true) WITH CHECK (true);

-- Sign-in: the user with this subject and a password, if any.
CREATE FUNCTION user_password_get(p_subject text)
	RETURNS TABLE (user_id uuid, password_hash text, disabled boolean)
	LANGUAGE sql STABLE SECURITY DEFINER SET search_path = vigil, pg_catalog
	AS $$
	SELECT u.id, c.password_hash, u.disabled
	  FROM users u JOIN user_credentials c ON c.user_id = u.id
	 WHERE u.subject = p_subject
$$;

-- A tenant admin creating a user: a new subject only (unique_violation
-- otherwise), so no tenant can take over, or set the password of, an
-- account that already exists.
CREATE FUNCTION user_create(p_subject text, p_email text, p_display_name text,
			    p_password_hash text) RETURNS uuid
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = vigil, pg_catalog
	AS $$
DECLARE
	v_id uuid;
BEGIN
	INSERT INTO users (subject, email, display_name)
	VALUES (p_subject, coalesce(p_email, ''), coalesce(p_display_name, ''))
	RETURNING id INTO v_id;
	IF p_password_hash IS NOT NULL THEN
		INSERT INTO user_credentials (user_id, password_hash)
		VALUES (v_id, p_password_hash);
	END IF;
	RETURN v_id;
END
$$;

-- Binding an existing user to a tenant by subject.
CREATE FUNCTION user_id_by_subject(p_subject text) RETURNS uuid
	LANGUAGE sql STABLE SECURITY DEFINER SET search_path = vigil, pg_catalog
	AS $$ SELECT id FROM users WHERE subject = p_subject $$;

-- Authentication by API key: the live key with this prefix (the caller
-- compares the hash itself, in constant time). `stale` asks the caller to
-- refresh last_used_at, at most once a minute. PL/pgSQL rather than SQL:
-- it runs on every request, and a SECURITY DEFINER SQL function is
-- planned again at each call while PL/pgSQL keeps its plan.
CREATE FUNCTION api_key_by_prefix(p_prefix text)
	RETURNS TABLE (id uuid, tenant_id uuid, tenant_name text, role text,
		       hash bytea, stale boolean)
	LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = vigil, pg_catalog
	AS $$
BEGIN
	RETURN QUERY
	SELECT k.id, k.tenant_id, t.name, k.role, k.hash,
	       k.last_used_at IS NULL OR k.last_used_at < now() - interval '60 seconds'
	  FROM api_keys k
	  JOIN tenants t ON t.id = k.tenant_id AND t.state = 'active'
	 WHERE k.prefix = p_prefix
	   AND k.revoked_at IS NULL
	   AND (k.expires_at IS NULL OR k.expires_at > now());
END
$$;

-- Platform admins reading the platform's audit chain (tenant_id NULL),
-- which row-level security hides from vigil_app.
CREATE FUNCTION audit_list_platform(p_after bigint, p_limit integer)
	RETURNS SETOF audit_log
	LANGUAGE sql STABLE SECURITY DEFINER SET search_path = vigil, pg_catalog
	AS $$
	SELECT * FROM audit_log
	 WHERE tenant_id IS NULL AND seq > coalesce(p_after, 0)
	 ORDER BY seq
	 LIMIT least(greatest(coalesce(p_limit, 100), 1), 1000)
$$;

GRANT EXECUTE ON FUNCTION user_password_get(text),
		      user_create(text, text, text, text),
		      user_id_by_subject(text),
		      api_key_by_prefix(text),
		      audit_list_platform(bigint, integer)
	TO vigil_app;
-- platform admins create and update tenants through the gateway; the
-- gateway checks the role before it calls this
GRANT EXECUTE ON FUNCTION tenant_upsert(uuid, text, text, text) TO vigil_app;
