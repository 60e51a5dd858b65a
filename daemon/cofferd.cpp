// cofferd: the coffer daemon. run() follows systemd's order: config, hardening of the process,
// PIN credential, key protector, database, keyring, services, listener, READY=1; then it waits
// for signals (signalfd-style sigtimedwait, no work in handlers) and sweeps expired tokens (with
// their wrapped responses), AppRole secret IDs and request nonces.
// Every start-up failure is one clear log line and a non-zero exit.
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <systemd/sd-daemon.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <ctime>
#include <iostream>

#include "api/http_server.h"
#include "api/vault_router.h"
#include "api/rate_limit.h"
#include "audit/audit_log.h"
#include "auth/approle.h"
#include "auth/cert_roles.h"
#include "auth/login_lockout.h"
#include "auth/nonce_guard.h"
#include "auth/policy_store.h"
#include "auth/token_store.h"
#include "common/log.h"
#include "daemon/app.h"
#include "daemon/instance_lock.h"
#include "engines/kv_engine.h"
#include "engines/wrapping.h"
#include "keys/keyring.h"
#include "storage/barrier.h"

namespace coffer::daemon {
namespace {

// Core dumps and ptrace-by-peers could expose unwrapped keys: switch both off first thing.
Status harden_process() {
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) return Error(Code::internal, "prctl(PR_SET_DUMPABLE) failed");
  rlimit none{0, 0};
  if (setrlimit(RLIMIT_CORE, &none) != 0) return Error(Code::internal, "setrlimit(RLIMIT_CORE) failed");
  return Status::Ok();
}

std::int64_t now_seconds() { return static_cast<std::int64_t>(std::time(nullptr)); }

std::string describe_brute_force_limits(const Config& c) {
  std::string text = "rate limits: ";
  if (c.rate_limit.enabled) {
    auto one = [](const char* name, const api::ClassLimits& l) {
      auto num = [](double v) {
        std::string t = std::to_string(v);
        t.erase(t.find_last_not_of('0') + 1);
        if (!t.empty() && t.back() == '.') t.pop_back();
        return t;
      };
      return std::string(name) + " " + num(l.identity.rate) + "/s burst " + num(l.identity.burst) +
             " per certificate, " + num(l.address.rate) + "/s burst " + num(l.address.burst) + " per address";
    };
    text += one("login", c.rate_limit.login) + "; " + one("read", c.rate_limit.read) + "; " +
            one("write", c.rate_limit.write);
  } else {
    text += "off ([rate_limit] enabled = false)";
  }
  text += "; login lockout: ";
  text += c.lockout.enabled ? std::to_string(c.lockout.threshold) + " failed logins within " +
                                  std::to_string(c.lockout.counter_reset_seconds) + "s lock an identity out for " +
                                  std::to_string(c.lockout.duration_seconds) + "s"
                            : std::string("off ([lockout] enabled = false)");
  return text;
}

// Once a minute: drop idle buckets and expired lockout entries, and tell the operator what the
// limits refused since the last report (per request it is only in the audit log and at debug).
void report_brute_force_limits(api::RateLimiter& limiter, auth::LoginLockout& lockout) {
  limiter.sweep();
  lockout.sweep();
  const api::RateStats st = limiter.take_stats();
  const std::uint64_t refused = st.refused_login + st.refused_read + st.refused_write;
  if (refused > 0) {
    log_warning("rate limits refused " + std::to_string(refused) + " requests in the last minute (login " +
                std::to_string(st.refused_login) + ", read " + std::to_string(st.refused_read) + ", write " +
                std::to_string(st.refused_write) + "); the audit log names the clients");
  }
  if (st.active_evictions > 0) {
    log_warning("rate limits: " + std::to_string(st.active_evictions) +
                " active buckets evicted because a table was full (clients from many addresses or "
                "certificates; raise rate_limit.max_buckets if this is legitimate load)");
  }
}

int run(const std::string& config_path) {
  auto fail = [](const Status& st) {
    log_error("cofferd: " + st.message());
    sd_notifyf(0, "STATUS=failed: %s", st.message().c_str());
    return 1;
  };

  if (Status st = harden_process(); !st.ok()) return fail(st);
  // A file-size limit (RLIMIT_FSIZE) must refuse the audited request (EFBIG), not kill cofferd.
  signal(SIGXFSZ, SIG_IGN);
  auto config = load_config(config_path);
  if (!config.ok()) return fail(config.status());
  LogLevel level = LogLevel::info;
  parse_log_level(config->log_level, level);
  set_log_level(level);

  std::unique_ptr<keys::KeyProtector> protector;
  {
    auto pin = read_pin(*config, std::nullopt);
    if (!pin.ok()) return fail(pin.status());
    auto opened = open_protector(*config, *pin);
    if (!opened.ok()) return fail(opened.status());
    protector = std::move(opened).value();
  }  // the PIN is wiped here
  if (Status st = protector->self_test(); !st.ok()) return fail(st.with_context("key protector self-test failed"));
  const keys::ProtectorInfo pinfo = protector->describe();
  log_info("key protector: " + pinfo.kind + ", master key " + pinfo.master_key_id + ", " + pinfo.mechanism +
           ", " + pinfo.detail);

  auto db = open_storage(*config, false);
  if (!db.ok()) return fail(db.status());
  // Once the database is known to exist (so the lock file only ever appears beside a database):
  // a second cofferd on it stops here, before serving anything.
  auto instance = lock_database(config->storage_path);
  if (!instance.ok()) return fail(instance.status());
  auto keyring = keys::Keyring::load(**db, *protector);
  if (!keyring.ok()) return fail(keyring.status());
  log_info("keyring loaded: DEK v" + std::to_string((*keyring)->current_dek_version()) + " current");

  auto cluster_id = (*db)->get_meta("cluster_id");
  auto cluster_name = (*db)->get_meta("cluster_name");
  if (!cluster_id.ok()) return fail(cluster_id.status());
  if (!cluster_name.ok()) return fail(cluster_name.status());

  auth::TokenSettings token_settings;
  token_settings.default_ttl = config->token_default_ttl_seconds;
  token_settings.max_ttl = config->token_max_ttl_seconds;
  auth::TokenStore tokens(**db, (*keyring)->token_hash_key(), token_settings, now_seconds);
  auth::PolicyStore policies(**db);
  auto cert_roles = auth::CertRoleStore::load(**db);
  if (!cert_roles.ok()) return fail(cert_roles.status());
  for (const auto& warning : (*cert_roles)->load_warnings()) log_warning("cert role skipped: " + warning);
  auth::AppRoleStore approle(**db, tokens, now_seconds);
  storage::Barrier barrier(**db, **keyring);
  engines::KvEngine kv(barrier);
  engines::WrappingEngine wrapping(**db, barrier, tokens, now_seconds);
  auth::NonceGuard nonces(**db, config->nonce_window_seconds, now_seconds);

  api::ServerInfo info;
  info.version = kVersion;
  info.build_date = __DATE__;
  info.cluster_id = cluster_id->value_or("");
  info.cluster_name = cluster_name->value_or("coffer");
  info.seal_type = pinfo.kind;
  info.max_json_depth = config->max_json_depth;
  // The audit log opens before the listener: if it cannot, cofferd does not serve (fail closed).
  std::unique_ptr<audit::AuditLog> audit_log;
  if (!config->audit_path.empty()) {
    auto sink = audit::FileSink::open(config->audit_path, static_cast<std::uint64_t>(config->audit_rotate_bytes),
                                     config->audit_rotate_seconds);
    if (!sink.ok()) return fail(sink.status());
    audit::AuditOptions options;
    options.fsync_always = config->audit_fsync_always;
    options.sync_interval_ms = config->audit_sync_interval_ms;
    options.checkpoint_every = static_cast<std::uint64_t>(config->audit_checkpoint_every);
    auto opened = audit::AuditLog::open(std::move(sink).value(), (*keyring)->audit_hmac_key(), db->get(), options);
    if (!opened.ok()) return fail(opened.status().with_context("cannot open the audit log"));
    audit_log = std::move(opened).value();
    log_info("audit log: " + config->audit_path + " (fsync " +
             (options.fsync_always ? std::string("always") : "group, " + std::to_string(options.sync_interval_ms) + " ms") +
             "), chain at record " + std::to_string(audit_log->head().seq));
  } else {
    log_warning("no [audit] section in the configuration: requests are not audited");
  }
  // Brute-force defences (issue 6): in memory, so a restart clears them.
  api::RateLimiter rate_limiter(config->rate_limit);
  auth::LoginLockout lockout(config->lockout);
  log_info(describe_brute_force_limits(*config));
  api::Services services{tokens, policies, **cert_roles, kv, info};
  services.rate_limiter = config->rate_limit.enabled ? &rate_limiter : nullptr;
  services.lockout = config->lockout.enabled ? &lockout : nullptr;
  services.approle = &approle;
  services.wrapping = &wrapping;
  services.max_wrapping_ttl = config->max_wrapping_ttl_seconds;
  services.nonces = &nonces;
  api::VaultRouter router(std::move(services), audit_log.get());

  // Block the signals before the listener starts its threads, so they inherit the mask and
  // only this thread receives them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto server = api::HttpServer::start(config->listener, [&router](api::HttpRequest& r) { return router.handle(r); });
  if (!server.ok()) return fail(server.status());
  log_info("cofferd " + std::string(kVersion) + " serving https://" + config->listener.address + ":" +
           std::to_string((*server)->port()) + " (mutual TLS required)");
  sd_notify(0, "READY=1\nSTATUS=serving");

  std::uint64_t watchdog_usec = 0;
  const bool watchdog = sd_watchdog_enabled(0, &watchdog_usec) > 0;
  const long tick = watchdog ? std::max<long>(1, static_cast<long>(watchdog_usec / 2000000)) : 30;
  std::int64_t next_sweep = now_seconds() + 60;
  for (;;) {
    timespec timeout{tick, 0};
    const int sig = sigtimedwait(&signals, nullptr, &timeout);
    if (sig == SIGTERM || sig == SIGINT) {
      log_info(std::string("received ") + (sig == SIGTERM ? "SIGTERM" : "SIGINT") + ", stopping");
      break;
    }
    if (sig == SIGHUP) {
      // The CRL is reloaded in place; the server certificate and key need a restart for now.
      Status st = (*server)->reload_crl();
      if (st.ok()) {
        log_info("SIGHUP: client CRL reloaded (server certificate changes still need a restart)");
      } else {
        log_error("SIGHUP: CRL reload failed, keeping the previous CRL: " + st.message());
      }
      if (audit_log != nullptr) {
        Status reopened = audit_log->reopen();
        if (reopened.ok()) {
          log_info("SIGHUP: audit log " + audit_log->describe() + " reopened at record " +
                   std::to_string(audit_log->head().seq));
        } else {
          log_error("SIGHUP: audit log reopen failed, audited requests are refused: " + reopened.message());
        }
      }
    }
    if (watchdog) sd_notify(0, "WATCHDOG=1");
    if (now_seconds() >= next_sweep) {
      auto swept = tokens.sweep_expired();
      if (!swept.ok()) log_warning("expired-token sweep failed: " + swept.status().to_string());
      auto secret_ids = approle.sweep_expired();
      if (!secret_ids.ok()) {
        log_warning("expired AppRole secret-ID sweep failed: " + secret_ids.status().to_string());
      } else if (*secret_ids > 0) {
        log_debug("swept " + std::to_string(*secret_ids) + " expired AppRole secret ID(s) and replay tombstone(s)");
      }
      // Expired wrapping tokens went with the token sweep (their responses cascade); request
      // nonces whose window has passed are forgotten here.
      auto swept_nonces = nonces.sweep();
      if (!swept_nonces.ok()) log_warning("request-nonce sweep failed: " + swept_nonces.status().to_string());
      report_brute_force_limits(rate_limiter, lockout);
      next_sweep = now_seconds() + 60;
    }
  }
  sd_notify(0, "STOPPING=1");
  (*server)->stop();
  if (audit_log != nullptr) {
    if (Status st = audit_log->close(); !st.ok()) log_error("audit log: shutdown checkpoint failed: " + st.message());
  }
  log_info("cofferd stopped");  // the keyring and the PIN-derived state are wiped by their destructors on return
  return 0;
}

}  // namespace
}  // namespace coffer::daemon

int main(int argc, char** argv) {
  CLI::App app{"cofferd — hardware-rooted secrets daemon speaking Vault's HTTP API over mutual TLS"};
  std::string config_path = "/etc/coffer/cofferd.toml";
  bool check_only = false;
  app.add_option("-c,--config", config_path, "configuration file (TOML)")->capture_default_str();
  app.add_flag("--check-config", check_only, "validate the configuration file and exit");
  app.set_version_flag("--version", std::string("cofferd ") + coffer::daemon::kVersion);
  app.footer(
      "The PKCS#11 PIN is read from the systemd credential named by protector.pkcs11.pin_credential\n"
      "($CREDENTIALS_DIRECTORY/<name>), never from the environment or the command line.\n"
      "Signals: SIGTERM/SIGINT stop gracefully; SIGHUP reloads the client CRL and reopens the audit file. Exit status: 0 after a clean stop, 1 on a start-up error.");
  CLI11_PARSE(app, argc, argv);
  if (check_only) {
    auto config = coffer::daemon::load_config(config_path);
    if (!config.ok()) {
      std::cerr << "cofferd: " << config.status().message() << "\n";
      return 1;
    }
    std::cout << "cofferd: " << config_path << " is valid\n";
    return 0;
  }
  return coffer::daemon::run(config_path);
}
