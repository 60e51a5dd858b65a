// cofferctl: key ceremonies and administration, run by the operator on the box, offline
// (it opens the key protector and the database itself; stop cofferd for ceremonies that write).
// A table of verbs, each with its own --help, argument checks and exit code:
//   init    create the master key and keyring, print the initial root token once
//   status  describe the protector, self-test it, and show the keyring
// Exit codes: 0 success, 1 operational error (message on stderr), 2 usage error (CLI11).
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <ctime>
#include <iostream>
#include <nlohmann/json.hpp>

#include "auth/token_store.h"
#include "crypto/random.h"
#include "daemon/app.h"
#include "keys/keyring.h"

namespace coffer::cli {
namespace {

struct Common {
  std::string config_path = "/etc/coffer/cofferd.toml";
  std::optional<std::string> pin_file;
  std::string format = "text";
};

int fail(const Status& st) {
  std::cerr << "cofferctl: " << st.message() << "\n";
  return 1;
}

int cmd_init(const Common& c) {
  auto config = daemon::load_config(c.config_path);
  if (!config.ok()) return fail(config.status());

  // Refuse before touching the HSM when the database is already initialised.
  if (::access(config->storage_path.c_str(), F_OK) == 0) {
    auto existing = daemon::open_storage(*config, false);
    if (!existing.ok()) return fail(existing.status());
    auto rows = (*existing)->load_keyring();
    if (!rows.ok()) return fail(rows.status());
    if (!rows->empty()) {
      return fail(Error(Code::already_exists, "coffer is already initialised (" + config->storage_path +
                                                  " holds a keyring); nothing was changed"));
    }
  }
  auto pin = daemon::read_pin(*config, c.pin_file);
  if (!pin.ok()) return fail(pin.status());
  auto protector = daemon::open_protector(*config, *pin);
  if (!protector.ok()) return fail(protector.status());

  if (Status st = (*protector)->create_master_key(); !st.ok()) {
    if (st.code() == Code::already_exists) {
      return fail(st.with_context(
          "refusing to initialise: the token already holds this master key, which may protect another "
          "database. Use a new protector.pkcs11.key_label, or remove the old key once nothing depends on it"));
    }
    return fail(st.with_context("cannot create the master key"));
  }
  if (Status st = (*protector)->self_test(); !st.ok()) return fail(st.with_context("master key self-test failed"));

  auto db = daemon::open_storage(*config, true);
  if (!db.ok()) return fail(db.status());
  if (Status st = keys::Keyring::initialize(**db, **protector); !st.ok()) {
    return fail(st.with_context("cannot create the keyring"));
  }
  auto keyring = keys::Keyring::load(**db, **protector);
  if (!keyring.ok()) return fail(keyring.status());

  auto cluster_id = crypto::random_uuid();
  if (!cluster_id.ok()) return fail(cluster_id.status());
  for (const auto& [k, v] : {std::pair<std::string, std::string>{"cluster_id", *cluster_id},
                             {"cluster_name", "coffer-" + cluster_id->substr(0, 8)},
                             {"initialized_at", std::to_string(std::time(nullptr))}}) {
    if (Status st = (*db)->put_meta(k, v); !st.ok()) return fail(st);
  }

  auth::TokenSettings settings;
  settings.default_ttl = config->token_default_ttl_seconds;
  settings.max_ttl = config->token_max_ttl_seconds;
  auth::TokenStore tokens(**db, (*keyring)->token_hash_key(), settings,
                          [] { return static_cast<std::int64_t>(std::time(nullptr)); });
  auth::TokenSpec root_spec;
  root_spec.policies = {"root"};
  root_spec.display_name = "root";
  root_spec.path = "auth/token/root";
  root_spec.renewable = false;
  root_spec.no_expiry = true;
  auto root = tokens.create(root_spec);
  if (!root.ok()) return fail(root.status().with_context("cannot create the root token"));

  const keys::ProtectorInfo info = (*protector)->describe();
  const auto token = root->token.view(crypto::reveal());
  if (c.format == "json") {
    // Written straight from wiped memory; nothing else holds the token.
    std::cout << "{\"root_token\":\"" << token << "\",\"master_key\":\"" << info.master_key_id
              << "\",\"protector\":\"" << info.kind << "\",\"cluster_id\":\"" << *cluster_id << "\"}\n";
  } else {
    std::cout << "coffer initialised.\n"
              << "  protector:   " << info.kind << " (" << info.detail << ")\n"
              << "  master key:  " << info.master_key_id << " (" << info.mechanism << ", non-extractable)\n"
              << "  database:    " << config->storage_path << "\n"
              << "  cluster id:  " << *cluster_id << "\n\n"
              << "Initial root token (shown once; it is stored only as a keyed hash):\n\n  " << token << "\n\n"
              << "Next: start cofferd, use the root token to write policies and cert roles, then revoke it\n"
              << "(POST /v1/auth/token/revoke-self) and keep day-to-day access on scoped tokens.\n";
  }
  std::cout.flush();
  return 0;
}

int cmd_status(const Common& c) {
  auto config = daemon::load_config(c.config_path);
  if (!config.ok()) return fail(config.status());
  auto pin = daemon::read_pin(*config, c.pin_file);
  if (!pin.ok()) return fail(pin.status());
  auto protector = daemon::open_protector(*config, *pin);
  if (!protector.ok()) return fail(protector.status());
  const keys::ProtectorInfo info = (*protector)->describe();
  const Status self_test = (*protector)->self_test();
  auto db = daemon::open_storage(*config, false);
  if (!db.ok()) return fail(db.status());
  auto rows = (*db)->load_keyring();
  if (!rows.ok()) return fail(rows.status());
  auto cluster_id = (*db)->get_meta("cluster_id");

  nlohmann::json j;
  j["protector"] = {{"kind", info.kind}, {"master_key", info.master_key_id}, {"mechanism", info.mechanism},
                    {"detail", info.detail}, {"self_test", self_test.ok() ? "ok" : self_test.message()}};
  j["database"] = config->storage_path;
  j["initialized"] = !rows->empty();
  j["cluster_id"] = cluster_id.ok() && cluster_id->has_value() ? **cluster_id : "";
  j["keyring"] = nlohmann::json::array();
  for (const auto& r : *rows) {
    j["keyring"].push_back({{"purpose", r.purpose}, {"version", r.version}, {"mechanism", r.mechanism},
                            {"master_key", r.master_key_id}, {"created_at", r.created_at},
                            {"encryptions", r.encryptions}});
  }
  if (c.format == "json") {
    std::cout << j.dump(2) << "\n";
  } else {
    std::cout << "protector:   " << info.kind << " — " << info.detail << "\n"
              << "master key:  " << info.master_key_id << " (" << info.mechanism << ")\n"
              << "self-test:   " << (self_test.ok() ? "ok" : self_test.message()) << "\n"
              << "database:    " << config->storage_path << "\n"
              << "initialised: " << (rows->empty() ? "no (run cofferctl init)" : "yes") << "\n";
    for (const auto& r : *rows) {
      std::cout << "keyring:     " << r.purpose << " v" << r.version << " wrapped by " << r.master_key_id << " ("
                << r.mechanism << "), " << r.encryptions << " encryptions\n";
    }
  }
  if (!self_test.ok()) return 1;
  return rows->empty() ? 1 : 0;
}

}  // namespace
}  // namespace coffer::cli

int main(int argc, char** argv) {
  using coffer::cli::Common;
  CLI::App app{"cofferctl — key ceremonies and administration for coffer"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("cofferctl ") + coffer::daemon::kVersion);
  Common common;
  auto add_common = [&common](CLI::App* sub) {
    sub->add_option("-c,--config", common.config_path, "cofferd configuration file")->capture_default_str();
    sub->add_option("--pin-file", common.pin_file,
                    "file holding the PKCS#11 user PIN (mode 0600); default: the systemd credential "
                    "$CREDENTIALS_DIRECTORY/<protector.pkcs11.pin_credential>");
    sub->add_option("--format", common.format, "output format")->check(CLI::IsMember({"text", "json"}))->capture_default_str();
  };
  auto* init = app.add_subcommand("init",
                                  "create the master key in the HSM, the keyring in the database, and print the "
                                  "initial root token once (refuses if already initialised)");
  add_common(init);
  auto* status = app.add_subcommand("status", "describe and self-test the key protector and show the keyring "
                                              "(exit 1 if the self-test fails or coffer is not initialised)");
  add_common(status);
  CLI11_PARSE(app, argc, argv);
  if (init->parsed()) return coffer::cli::cmd_init(common);
  if (status->parsed()) return coffer::cli::cmd_status(common);
  return 2;
}
