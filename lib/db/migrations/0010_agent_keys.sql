-- 0010_agent_keys: the agent token the operator generates for each tenant
-- (the Secret vigil-agent-token in the tenant's namespace) is an API key
-- with the agent role. The operator registers the key's prefix and SHA-256
-- through this function, never the key itself; a new token (the Secret
-- deleted and generated again) revokes the one before.
SET LOCAL ROLE vigil_owner;
SET LOCAL search_path = vigil, pg_catalog;

CREATE FUNCTION agent_key_register(p_tenant uuid, p_prefix text, p_hash_hex text)
	RETURNS boolean
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = vigil, pg_catalog
	AS $$
DECLARE
	v_tenant uuid;
	v_hash bytea := decode(p_hash_hex, 'hex');
	v_added boolean := false;
BEGIN
	SELECT tenant_id INTO v_tenant FROM api_keys
	 WHERE prefix = p_prefix AND hash = v_hash;
	IF v_tenant IS NOT NULL AND v_tenant <> p_tenant THEN
		RAISE EXCEPTION 'agent key % belongs to another tenant', p_prefix
			USING ERRCODE = 'unique_violation';
	END IF;
	IF v_tenant IS NULL THEN
		-- a prefix taken by another key raises unique_violation
		INSERT INTO api_keys (tenant_id, name, prefix, hash, role, created_by)
		VALUES (p_tenant, 'agent token', p_prefix, v_hash, 'agent',
			'vigil-operator');
		v_added := true;
	END IF;
	UPDATE api_keys SET revoked_at = now()
	 WHERE tenant_id = p_tenant AND created_by = 'vigil-operator'
	   AND role = 'agent' AND prefix <> p_prefix AND revoked_at IS NULL;
	RETURN v_added;
END
$$;
REVOKE ALL ON FUNCTION agent_key_register(uuid, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agent_key_register(uuid, text, text) TO vigil_platform;
