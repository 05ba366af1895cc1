# Vault for docker-compose.yml: file storage, loopback only. The seed step initialises it
# (1 key share), unseals it at every `docker compose up` and seeds it. Kept equal to
# devstack.VaultConfig("/vault/file") by internal/devstack/compose_test.go.
storage "file" { path = "/vault/file" }
listener "tcp" {
  address         = "127.0.0.1:8200"
  cluster_address = "127.0.0.1:8201"
  tls_disable     = true
}
api_addr      = "http://127.0.0.1:8200"
cluster_addr  = "https://127.0.0.1:8201"
disable_mlock = true
ui            = false
