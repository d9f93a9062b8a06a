-- Every primary address a Clerk user's events have carried, with the newest event time
-- that carried it: a waitlist entry on an address the user has since moved away from
-- still belongs to that user's contact when the user had the address after the entry
-- joined (in event-time order, the user's event would have graduated it).
create table clerk_user_addresses (
    user_id   text        not null,
    email     text        not null check (email = lower(email)),
    last_seen timestamptz not null,
    primary key (email, user_id)
);
