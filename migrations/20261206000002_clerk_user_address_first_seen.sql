-- When each of a user's addresses was first seen, as well as last: a waitlist entry
-- graduates at the user's first event when that event carried the entry's address and
-- came after the entry joined, in whatever order the events arrive. Rows from before
-- this migration start from their last sighting, the earliest one known.
alter table clerk_user_addresses add column first_seen timestamptz;
update clerk_user_addresses set first_seen = last_seen;
alter table clerk_user_addresses alter column first_seen set not null;
create index clerk_user_addresses_first_seen on clerk_user_addresses (user_id, first_seen);

-- The address each waitlist entry has (Clerk never changes it): what a user's first
-- address is compared with to tell whether the user graduated the entry.
create table clerk_waitlist_addresses (
    entry_id text primary key,
    email    text not null check (email = lower(email))
);
insert into clerk_waitlist_addresses (entry_id, email)
select waitlist_entry_id, lower(email) from contacts where waitlist_entry_id is not null
on conflict do nothing;
