-- 0014_api_key_expiry: the key lookup also says when the key expires.
--
-- vigil-gateway keeps a verified API key for a few seconds so the hot
-- path skips this lookup; it must never keep one past the key's own
-- expiry, so the lookup returns it. Same checks, same grant.
SET LOCAL ROLE vigil_owner;
SET LOCAL search_path = vigil, pg_catalog;

DROP FUNCTION api_key_by_prefix(text);
CREATE FUNCTION api_key_by_prefix(p_prefix text)
	RETURNS TABLE (id uuid, tenant_id uuid, tenant_name text, role text,
		       hash bytea, stale boolean, expires_at timestamptz)
	LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = vigil, pg_catalog
	AS $$
BEGIN
	RETURN QUERY
	SELECT k.id, k.tenant_id, t.name, k.role, k.hash,
	       k.last_used_at IS NULL OR k.last_used_at < now() - interval '60 seconds',
	       k.expires_at
	  FROM api_keys k
	  JOIN tenants t ON t.id = k.tenant_id AND t.state = 'active'
	 WHERE k.prefix = p_prefix
	   AND k.revoked_at IS NULL
	   AND (k.expires_at IS NULL OR k.expires_at > now());
END
$$;
REVOKE ALL ON FUNCTION api_key_by_prefix(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api_key_by_prefix(text) TO vigil_app;
