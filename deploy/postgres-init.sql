-- Databases of the compose stack (the postgres image runs this once, on an empty volume):
-- oidcflow for the access workflows' grants, hydra for Ory Hydra. Temporal's auto-setup
-- creates its own.
CREATE DATABASE oidcflow;
CREATE DATABASE hydra;
