// cofferd's configuration: one TOML file (daemon/cofferd.example.toml documents every option).
// Unknown keys are refused (a typo must not silently fall back to a default), every option has a
// safe default, and values are checked here so the rest of the daemon gets typed, valid settings.
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"

namespace coffer::daemon {

struct ListenerConfig {
  std::string address = "127.0.0.1";
  std::uint16_t port = 8200;
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string client_ca_file;
  std::string crl_file;
  unsigned threads = 0;
  unsigned max_connections = 1024;
  std::int64_t connection_timeout_seconds = 30;
  std::size_t max_request_bytes = 1 << 20;
  std::size_t max_path_bytes = 1024;
  std::size_t max_json_depth = 32;
};

struct Pkcs11Settings {
  std::string module = "softhsm2";
  std::string token_label;
  std::string token_uri;
  std::string key_label = "coffer-mk-1";
  std::string pin_credential = "coffer-pkcs11-pin";
};

struct Config {
  std::string source_path;
  ListenerConfig listener;
  std::string storage_path = "/var/lib/coffer/coffer.db";
  std::string protector_type = "pkcs11";
  Pkcs11Settings pkcs11;
  std::int64_t token_default_ttl_seconds = 15 * 60;
  std::int64_t token_max_ttl_seconds = 24 * 3600;
  std::string log_level = "info";
};

// Errors: invalid_argument naming the file, the key and what is wrong; not_found for a
// missing file.
Result<Config> load_config(const std::string& path);

}  // namespace coffer::daemon
