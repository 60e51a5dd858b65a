// cofferctl: key ceremonies and administration, run by the operator on the box, offline
// (it opens the key protector and the database itself; stop cofferd for ceremonies that write).
// A table of verbs, each with its own --help, argument checks and exit code:
//   init    create the master key and keyring, print the initial root token once
//   status  describe the protector, self-test it, and show the keyring
//   audit verify  check audit files: hash chain, checkpoint MACs, the head in the database
//   audit hash    the HMAC form of a value, to search the audit log for it
//   tpm approve   sign the present PCR state as an approved PCR policy (signed PCR policies)
// Exit codes: 0 success, 1 operational error (message on stderr), 2 usage error (CLI11).
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <ctime>
#include <fstream>
#include <sstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "audit/chain.h"
#include "audit/redact.h"
#include "audit/verify.h"
#include "auth/token_store.h"
#include "crypto/encoding.h"
#include "crypto/random.h"
#include "crypto/rsa.h"
#include "daemon/app.h"
#include "keys/keyring.h"
#include "tpm/tpm_protector.h"

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
  // Create the database before the master key: a database that cannot be created must not leave
  // a new key behind in the HSM/TPM that blocks the next attempt.
  auto db = daemon::open_storage(*config, true);
  if (!db.ok()) return fail(db.status());

  if (Status st = (*protector)->create_master_key(); !st.ok()) {
    if (st.code() == Code::already_exists && config->protector_type == "tpm") {
      return fail(st.with_context(
          "refusing to initialise: " + config->tpm.key_blob_file + " already holds a TPM master key, which may "
          "protect another database. Use a new protector.tpm.key_blob_file, or remove the old one once nothing "
          "depends on it"));
    }
    if (st.code() == Code::already_exists) {
      return fail(st.with_context(
          "refusing to initialise: the token already holds this master key, which may protect another "
          "database. Use a new protector.pkcs11.key_label, or remove the old key once nothing depends on it"));
    }
    return fail(st.with_context("cannot create the master key"));
  }
  if (Status st = (*protector)->self_test(); !st.ok()) return fail(st.with_context("master key self-test failed"));

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
  if (config->protector_type == "tpm") {
    j["protector"]["tcti"] = config->tpm.tcti;
    j["protector"]["pcrs"] = config->tpm.pcrs;
    j["protector"]["pcr_bank"] = "sha256";
    j["protector"]["key_blob_file"] = config->tpm.key_blob_file;
    j["protector"]["auth_value"] = !config->tpm_auth_credential.empty();
  }
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
              << "self-test:   " << (self_test.ok() ? "ok" : self_test.message()) << "\n";
    if (config->protector_type == "tpm") {
      std::cout << "tpm:         " << config->tpm.tcti << ", PCRs sha256:" << tpm::pcr_list(config->tpm.pcrs)
                << (config->tpm_auth_credential.empty() ? "" : " + auth value") << "\n"
                << "key blob:    " << config->tpm.key_blob_file << "\n";
    }
    std::cout
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

// The keyring, as status opens it: audit verify and audit hash need the audit-HMAC key.
Result<std::unique_ptr<keys::Keyring>> open_keyring(const Common& c, daemon::Config& config,
                                                    std::unique_ptr<storage::SqliteStorage>& db,
                                                    std::unique_ptr<keys::KeyProtector>& protector) {
  COFFER_ASSIGN_OR_RETURN(config, daemon::load_config(c.config_path));
  COFFER_ASSIGN_OR_RETURN(auto pin, daemon::read_pin(config, c.pin_file));
  COFFER_ASSIGN_OR_RETURN(protector, daemon::open_protector(config, pin));
  COFFER_ASSIGN_OR_RETURN(db, daemon::open_storage(config, false));
  return keys::Keyring::load(*db, *protector);
}

// Exit 0: the files verify; 1: tampering found or they cannot be checked.
int cmd_audit_verify(const Common& c, std::vector<std::string> files) {
  daemon::Config config;
  std::unique_ptr<storage::SqliteStorage> db;
  std::unique_ptr<keys::KeyProtector> protector;
  auto keyring = open_keyring(c, config, db, protector);
  if (!keyring.ok()) return fail(keyring.status());
  if (files.empty()) {
    if (config.audit_path.empty()) return fail(Error(Code::invalid_argument, "no files given and no [audit] path in the config"));
    files.push_back(config.audit_path);
  }
  auto ckpt_key = audit::derive_checkpoint_key((*keyring)->audit_hmac_key());
  if (!ckpt_key.ok()) return fail(ckpt_key.status());
  audit::VerifyOptions options;
  options.checkpoint_key = &*ckpt_key;
  auto head_text = db->get_meta(audit::kHeadMetaKey);
  if (!head_text.ok()) return fail(head_text.status());
  if (head_text->has_value()) {
    auto head = audit::decode_head(**head_text);
    if (!head.ok()) return fail(head.status());
    options.db_head = *head;
  }
  auto report = audit::verify_files(files, options);
  if (!report.ok()) return fail(report.status());
  nlohmann::json j{{"ok", report->ok()}, {"records", report->records}, {"checkpoints", report->checkpoints},
                   {"first_seq", report->first_seq}, {"last_seq", report->last_seq}, {"warnings", report->warnings}};
  if (options.db_head) j["database_head"] = {{"seq", options.db_head->seq}, {"stopped", options.db_head->stopped}};
  if (report->failure) {
    j["failure"] = {{"file", report->failure->file}, {"offset", report->failure->offset},
                    {"seq", report->failure->seq}, {"problem", report->failure->problem}};
  }
  if (c.format == "json") {
    std::cout << j.dump(2) << "\n";
  } else {
    for (const auto& w : report->warnings) std::cout << "warning: " << w << "\n";
    if (report->failure) {
      const auto& f = *report->failure;
      std::cout << "FAILED at record " << f.seq << (f.file.empty() ? "" : " (" + f.file + ", byte offset " + std::to_string(f.offset) + ")")
                << ": " << f.problem << "\n";
    } else {
      std::cout << "ok: " << report->records << " records (" << report->first_seq << " to " << report->last_seq
                << "), " << report->checkpoints << " checkpoints verified"
                << (options.db_head ? ", database head at record " + std::to_string(options.db_head->seq) : std::string(", no head in the database"))
                << "\n";
    }
  }
  return report->ok() ? 0 : 1;
}

int cmd_audit_hash(const Common& c, const std::string& value) {
  daemon::Config config;
  std::unique_ptr<storage::SqliteStorage> db;
  std::unique_ptr<keys::KeyProtector> protector;
  auto keyring = open_keyring(c, config, db, protector);
  if (!keyring.ok()) return fail(keyring.status());
  auto h = audit::hmac_value((*keyring)->audit_hmac_key(), value);
  if (!h.ok()) return fail(h.status());
  std::cout << *h << "\n";
  return 0;
}

int cmd_tpm_approve(const Common& c, const std::string& signing_key, std::optional<std::string> out) {
  auto config = daemon::load_config(c.config_path);
  if (!config.ok()) return fail(config.status());
  if (config->protector_type != "tpm" || config->tpm_policy_public_key.empty()) {
    return fail(Error(Code::failed_precondition,
                      c.config_path + ": signed PCR policies are not configured "
                                      "(protector.type = \"tpm\" with protector.tpm.policy_public_key)"));
  }
  const std::string path = out.value_or(config->tpm_pcr_approvals_file);
  std::string key_pem;
  {
    std::ifstream in(signing_key, std::ios::binary);
    if (!in) return fail(Error(Code::not_found, "cannot read the signing key " + signing_key));
    std::ostringstream ss;
    ss << in.rdbuf();
    key_pem = ss.str();
  }
  auto pin = daemon::read_pin(*config, c.pin_file);
  if (!pin.ok()) return fail(pin.status());
  auto policies = daemon::load_signed_pcr_policies(*config);
  if (!policies.ok()) return fail(policies.status());
  auto protector = tpm::TpmProtector::open(config->tpm, *pin, std::move(policies).value());
  if (!protector.ok()) return fail(protector.status());
  auto values = (*protector)->read_pcr_values(config->tpm.pcrs);
  if (!values.ok()) return fail(values.status());
  auto digest = tpm::pcr_policy_digest(*values);
  if (!digest.ok()) return fail(digest.status());
  std::vector<std::uint8_t> message = *digest;
  message.insert(message.end(), config->tpm.key_id.begin(), config->tpm.key_id.end());
  auto signature = crypto::rsa_pkcs1_sha256_sign(key_pem, message);
  if (!signature.ok()) return fail(signature.status().with_context("signing key " + signing_key));
  tpm::PcrApproval approval;
  for (const auto& [pcr, value] : *values) approval.pcrs.push_back(pcr);
  approval.policy_digest = *digest;
  approval.signature = std::move(signature).value();
  if (auto st = daemon::append_pcr_approval(path, approval); !st.ok()) return fail(st);
  if (c.format == "json") {
    nlohmann::json j = {{"approvals_file", path},
                        {"key_id", config->tpm.key_id},
                        {"pcrs", approval.pcrs},
                        {"digest", crypto::to_hex(approval.policy_digest)}};
    for (const auto& [pcr, value] : *values) j["pcr_values"][std::to_string(pcr)] = crypto::to_hex(value);
    std::cout << j.dump(2) << "\n";
  } else {
    std::cout << "Approved the present values of PCR " << tpm::pcr_list(approval.pcrs) << " (sha256) for "
              << config->tpm.key_id << ":\n";
    for (const auto& [pcr, value] : *values) std::cout << "  PCR " << pcr << " = " << crypto::to_hex(value) << "\n";
    std::cout << "Policy digest " << crypto::to_hex(approval.policy_digest) << "\nAppended to " << path << "\n";
  }
  return 0;
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
                    "file holding the PKCS#11 user PIN, or the TPM master key's auth value (mode 0600); "
                    "default: the systemd credential $CREDENTIALS_DIRECTORY/<protector.pkcs11.pin_credential> "
                    "or <protector.tpm.auth_credential> (none: no auth value)");
    sub->add_option("--format", common.format, "output format")->check(CLI::IsMember({"text", "json"}))->capture_default_str();
  };
  auto* init = app.add_subcommand("init",
                                  "create the master key in the HSM or TPM, the keyring in the database, and print the "
                                  "initial root token once (refuses if already initialised)");
  add_common(init);
  auto* status = app.add_subcommand("status", "describe and self-test the key protector and show the keyring "
                                              "(exit 1 if the self-test fails or coffer is not initialised)");
  add_common(status);
  auto* audit = app.add_subcommand("audit", "audit log tools");
  audit->require_subcommand(1);
  std::vector<std::string> audit_files;
  auto* verify = audit->add_subcommand("verify", "verify audit files, oldest first: hash chain, checkpoint MACs "
                                                 "and the chain head in the database (exit 1 on any problem; "
                                                 "stop cofferd first for a complete check)");
  add_common(verify);
  verify->add_option("files", audit_files, "audit files in order (default: [audit] path)");
  std::string hash_value;
  auto* hash = audit->add_subcommand("hash", "print the hmac-sha256:<hex> form a value takes in the audit log");
  add_common(hash);
  hash->add_option("value", hash_value, "the value (a token, an accessor, a secret)")->required();
  auto* tpm_cmd = app.add_subcommand("tpm", "TPM protector tools");
  tpm_cmd->require_subcommand(1);
  std::string signing_key;
  std::optional<std::string> approve_out;
  auto* approve = tpm_cmd->add_subcommand(
      "approve",
      "signed PCR policies: read the present values of the configured PCRs from the TPM, sign their policy "
      "digest (with the key id) with the operator's policy signing key and append the approval to "
      "protector.tpm.pcr_approvals_file (or --out). This is the approve-the-current-state ceremony after a "
      "verified update. The signing key should normally live off the box (offline, e.g. on removable media): "
      "bring it here only for this ceremony. Approve before `cofferctl init` to approve the first state");
  add_common(approve);
  approve->add_option("--signing-key", signing_key, "the operator's RSA-2048 policy signing key (PEM private key)")
      ->required();
  approve->add_option("--out", approve_out, "write the approval here instead of protector.tpm.pcr_approvals_file");
  CLI11_PARSE(app, argc, argv);
  if (approve->parsed()) return coffer::cli::cmd_tpm_approve(common, signing_key, approve_out);
  if (init->parsed()) return coffer::cli::cmd_init(common);
  if (status->parsed()) return coffer::cli::cmd_status(common);
  if (verify->parsed()) return coffer::cli::cmd_audit_verify(common, audit_files);
  if (hash->parsed()) return coffer::cli::cmd_audit_hash(common, hash_value);
  return 2;
}
