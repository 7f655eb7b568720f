-- 0001_roles: the database roles and the vigil schema.
--
-- vigil_owner     NOLOGIN. Owns every table and function. Tables FORCE row
--                 level security, so even the owner only sees rows through
--                 policies; the owner's own policies (owner_all) are what
--                 SECURITY DEFINER functions use to cross tenants.
-- vigil_app       LOGIN. The gateway, worker and brain. Owns nothing, no
--                 BYPASSRLS, only the grants it needs; sees one tenant at a
--                 time (vigil.tenant_id, set per transaction).
-- vigil_platform  NOLOGIN. May call the platform functions that cross
--                 tenants (tenant_upsert, tenant_archive, tenant_list, ...).
--                 Granted to the migrating user, which the operator uses.
--
-- Roles belong to the whole server, so they may exist already (another
-- database on the same server, or created by a DBA); the migrating user
-- needs CREATEROLE only when they do not. vigil_app's password is set
-- outside migrations.
DO $$
DECLARE
	r record;
BEGIN
	FOR r IN SELECT * FROM (VALUES ('vigil_owner', 'NOLOGIN'),
				       ('vigil_app', 'LOGIN'),
				       ('vigil_platform', 'NOLOGIN')) AS t (name, login)
	LOOP
		IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r.name) THEN
			BEGIN
				EXECUTE format('CREATE ROLE %I %s NOSUPERUSER NOCREATEDB '
					       'NOCREATEROLE NOREPLICATION NOBYPASSRLS',
					       r.name, r.login);
			EXCEPTION WHEN duplicate_object OR unique_violation THEN
				NULL; -- created meanwhile from another database
			END;
		END IF;
	END LOOP;

	IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles
		   WHERE rolname = 'vigil_app' AND (rolsuper OR rolbypassrls)) THEN
		RAISE EXCEPTION 'role vigil_app must not be a superuser or have BYPASSRLS';
	END IF;
	IF pg_catalog.pg_has_role('vigil_app', 'vigil_owner', 'MEMBER') THEN
		RAISE EXCEPTION 'role vigil_app must not be a member of vigil_owner';
	END IF;

	-- the migrating user creates objects as vigil_owner and runs the
	-- platform functions (a superuser is implicitly both)
	IF NOT pg_catalog.pg_has_role(current_user, 'vigil_owner', 'MEMBER') THEN
		EXECUTE format('GRANT vigil_owner TO %I', current_user);
	END IF;
	IF NOT pg_catalog.pg_has_role(current_user, 'vigil_platform', 'MEMBER') THEN
		EXECUTE format('GRANT vigil_platform TO %I', current_user);
	END IF;
END
$$;

CREATE SCHEMA vigil AUTHORIZATION vigil_owner;
REVOKE ALL ON SCHEMA vigil FROM PUBLIC;
GRANT USAGE ON SCHEMA vigil TO vigil_app, vigil_platform;

-- functions vigil_owner creates are not executable by everyone by default
ALTER DEFAULT PRIVILEGES FOR ROLE vigil_owner REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;

-- services check the schema version before they serve
GRANT SELECT ON public.schema_migrations TO vigil_app, vigil_platform;
