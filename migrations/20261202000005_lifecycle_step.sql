-- The "first lifecycle step" rule, written once: which stored Clerk events are a step of
-- a person's lifecycle that analytics count once per person (clerk_event_firsts), and
-- under which kind. Null for every other event. insert_clerk_event and the benchmarks
-- call it; the backfill in 20261122000005_api.sql predates it and holds the same rule.
create function lifecycle_step(event_type text, status text) returns text
language sql immutable parallel safe
as $$
    select case
        when event_type in ('user.created', 'user.deleted', 'organization.created',
                            'organization.deleted', 'waitlistEntry.created') then event_type
        when event_type = 'waitlistEntry.updated' and status in ('invited', 'rejected')
            then 'waitlistEntry.' || status
    end
$$;
