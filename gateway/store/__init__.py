"""The store: the only code that speaks SQL (schema and migrations, the page queue, the credit
ledger, tenants and keys, usage). Imports neither `gateway.work` nor `gateway.api`."""
