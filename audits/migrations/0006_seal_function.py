"""``audits_seal(batch, wait)``: chain pending events inside PostgreSQL, in one round trip.

Same encoding as audits/chain.py: SHA-256 over 'safety-audit-v1' and each chained field as
'<length in characters>:<value>', one per line; created_at in UTC with microseconds. The Python verifier
recomputes every hash, so any difference between the two would show as a broken chain at once (tests).
"""

from django.db import migrations

LOCK_KEY = 0x5AFE_A0D1

SQL = f"""
CREATE OR REPLACE FUNCTION audits_ns(value text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT char_length(coalesce(value, '')) || ':' || coalesce(value, '') || E'\\n'
$$;

CREATE OR REPLACE FUNCTION audits_seal(batch integer, wait boolean)
RETURNS TABLE(first_seq bigint, head_seq bigint, head_hash text, sealed integer)
LANGUAGE plpgsql AS $$
DECLARE
    h_seq bigint;
    h_hash text;
    prev text;
    f_seq bigint;
    n integer := 0;
    r record;
BEGIN
    IF wait THEN
        -- Sealing transactions are short; a sealer stuck longer than this leaves its events to the next one.
        PERFORM set_config('lock_timeout', '5s', true);
        PERFORM pg_advisory_xact_lock({LOCK_KEY});
    ELSIF NOT pg_try_advisory_xact_lock({LOCK_KEY}) THEN
        RETURN;
    END IF;
    -- Derived data only: the events themselves were committed durably by their writers.
    PERFORM set_config('synchronous_commit', 'off', true);
    SELECT e.seq, e.hash INTO h_seq, h_hash FROM audits_auditevent e
        WHERE e.seq IS NOT NULL ORDER BY e.seq DESC LIMIT 1;
    IF h_seq IS NULL THEN
        h_seq := 0;
        h_hash := repeat('0', 64);
    END IF;
    f_seq := h_seq + 1;
    FOR r IN SELECT * FROM audits_auditevent e WHERE e.seq IS NULL ORDER BY e.id LIMIT batch LOOP
        h_seq := h_seq + 1;
        prev := h_hash;
        h_hash := encode(sha256(convert_to(
            'safety-audit-v1' || E'\\n' || audits_ns(h_seq::text) || audits_ns(prev) || audits_ns(r.ticket_id)
            || audits_ns(to_char(r.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US') || '+00:00')
            || audits_ns(r.actor_id::text) || audits_ns(r.actor_label) || audits_ns(r.action)
            || audits_ns(r.subject_type) || audits_ns(r.subject_id) || audits_ns(r.subject_repr)
            || audits_ns(r.request_id) || audits_ns(r.trace_id) || audits_ns(r.principal_pseudonym)
            || audits_ns(r.data), 'UTF8')), 'hex');
        UPDATE audits_auditevent SET seq = h_seq, prev_hash = prev, hash = h_hash WHERE id = r.id;
        n := n + 1;
    END LOOP;
    RETURN QUERY SELECT f_seq, h_seq, h_hash, n;
END
$$;
"""


def install(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(SQL, params=None)


def uninstall(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP FUNCTION IF EXISTS audits_seal(integer, boolean)")
        schema_editor.execute("DROP FUNCTION IF EXISTS audits_ns(text)")


class Migration(migrations.Migration):

    dependencies = [("audits", "0005_seal_after_commit")]

    operations = [migrations.RunPython(install, uninstall)]
