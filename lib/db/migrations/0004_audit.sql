-- 0004_audit: the append-only, hash-chained audit log.
--
-- Each tenant has its own chain (tenant_id NULL: the platform's chain), as
-- a tenant-scoped writer can only see its own tenant's rows. A row's seq
-- is its position in the chain, prev_hash the hash of the row before (32
-- zero bytes for the first) and hash = sha256(prev_hash || row content).
-- A trigger fills seq, at, prev_hash and hash under a per-chain advisory
-- lock, whatever the writer sent; UNIQUE (tenant_id, seq) refuses a fork.
-- vigil_app may INSERT and SELECT only; a trigger refuses UPDATE, DELETE
-- and TRUNCATE even to the owner.
SET LOCAL ROLE vigil_owner;
SET LOCAL search_path = vigil, pg_catalog;

CREATE TABLE audit_log (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	tenant_id uuid REFERENCES tenants (id),
	seq bigint NOT NULL CHECK (seq >= 1),
	at timestamptz NOT NULL,
	actor text NOT NULL CHECK (length(actor) BETWEEN 1 AND 256),
	action text NOT NULL CHECK (length(action) BETWEEN 1 AND 128),
	object_type text NOT NULL DEFAULT '',
	object_id text NOT NULL DEFAULT '',
	request_id text NOT NULL DEFAULT '',
	source_ip inet,
	details jsonb NOT NULL DEFAULT '{}',
	prev_hash bytea NOT NULL CHECK (length(prev_hash) = 32),
	hash bytea NOT NULL UNIQUE CHECK (length(hash) = 32),
	CONSTRAINT audit_log_chain UNIQUE NULLS NOT DISTINCT (tenant_id, seq)
);

-- The hash of a row given the previous hash. The content is a JSON array
-- (jsonb's text form is canonical) with the time in UTC, so the hash does
-- not depend on the session's settings.
CREATE FUNCTION audit_hash(p_prev bytea, r audit_log) RETURNS bytea
	LANGUAGE sql STABLE SET search_path = vigil, pg_catalog
	AS $$
	SELECT sha256(p_prev || convert_to(jsonb_build_array(
		r.tenant_id, r.seq,
		to_char(r.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
		r.actor, r.action, r.object_type, r.object_id, r.request_id,
		host(r.source_ip), r.details)::text, 'UTF8'))
$$;

CREATE FUNCTION audit_chain() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = vigil, pg_catalog
	AS $$
DECLARE
	v_seq bigint;
	v_hash bytea;
BEGIN
	PERFORM pg_advisory_xact_lock(hashtextextended(
		'vigil.audit_log:' || coalesce(NEW.tenant_id::text, 'platform'), 0));
	IF NEW.tenant_id IS NULL THEN
		SELECT a.seq, a.hash INTO v_seq, v_hash FROM audit_log a
		 WHERE a.tenant_id IS NULL ORDER BY a.seq DESC LIMIT 1;
	ELSE
		SELECT a.seq, a.hash INTO v_seq, v_hash FROM audit_log a
		 WHERE a.tenant_id = NEW.tenant_id ORDER BY a.seq DESC LIMIT 1;
	END IF;
	NEW.seq := coalesce(v_seq, 0) + 1;
	NEW.at := clock_timestamp();
	NEW.prev_hash := coalesce(v_hash, '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea);
	NEW.hash := audit_hash(NEW.prev_hash, NEW);
	RETURN NEW;
END
$$;

CREATE FUNCTION audit_refuse_change() RETURNS trigger
	LANGUAGE plpgsql SET search_path = vigil, pg_catalog
	AS $$
BEGIN
	RAISE EXCEPTION 'audit_log is append-only' USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER audit_log_hash BEFORE INSERT ON audit_log
	FOR EACH ROW EXECUTE FUNCTION audit_chain();
CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
	FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
	FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();

ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_log FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_read ON audit_log FOR SELECT
	USING (tenant_id = (SELECT current_tenant()));
CREATE POLICY tenant_append ON audit_log FOR INSERT
	WITH CHECK (tenant_id = (SELECT current_tenant()));
CREATE POLICY owner_all ON audit_log TO vigil_owner USING (true) WITH CHECK (true);

GRANT SELECT ON audit_log TO vigil_app;
GRANT INSERT (tenant_id, actor, action, object_type, object_id, request_id,
	      source_ip, details) ON audit_log TO vigil_app;

-- A platform-level entry (tenant_id NULL), e.g. an emergency stop. Returns
-- the entry's seq in the platform chain.
CREATE FUNCTION audit_append_platform(p_actor text, p_action text,
				      p_object_type text, p_object_id text,
				      p_request_id text, p_details jsonb)
	RETURNS bigint
	LANGUAGE sql SECURITY DEFINER SET search_path = vigil, pg_catalog
	AS $$
	INSERT INTO audit_log (tenant_id, actor, action, object_type, object_id,
			       request_id, details)
	VALUES (NULL, p_actor, p_action, coalesce(p_object_type, ''),
		coalesce(p_object_id, ''), coalesce(p_request_id, ''),
		coalesce(p_details, '{}'))
	RETURNING seq
$$;

-- Walk one chain (p_tenant NULL: the platform's) and return the seq of the
-- first row that does not match, NULL when the chain is intact.
CREATE FUNCTION audit_verify(p_tenant uuid) RETURNS bigint
	LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = vigil, pg_catalog
	AS $$
DECLARE
	r audit_log;
	v_prev bytea := '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea;
	v_seq bigint := 0;
BEGIN
	FOR r IN SELECT * FROM audit_log a
		  WHERE a.tenant_id IS NOT DISTINCT FROM p_tenant ORDER BY a.seq
	LOOP
		v_seq := v_seq + 1;
		IF r.seq <> v_seq OR r.prev_hash <> v_prev
		   OR r.hash <> audit_hash(r.prev_hash, r) THEN
			RETURN v_seq;
		END IF;
		v_prev := r.hash;
	END LOOP;
	RETURN NULL;
END
$$;

GRANT EXECUTE ON FUNCTION audit_append_platform(text, text, text, text, text, jsonb),
		      audit_verify(uuid)
	TO vigil_app, vigil_platform;
