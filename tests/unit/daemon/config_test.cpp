// Tests for daemon/config: the shipped example parses to the documented defaults, and every
// kind of mistake is refused with a message naming the file and the key.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "daemon/config.h"

namespace coffer::daemon {
namespace {

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/coffer-config-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string write(const std::string& text) {
    const std::string path = dir_ + "/cofferd.toml";
    std::ofstream(path) << text;
    return path;
  }

  static constexpr const char* kMinimal =
      "[listener]\n"
      "tls_cert_file = \"/c.crt\"\n"
      "tls_key_file = \"/c.key\"\n"
      "client_ca_file = \"/ca.pem\"\n"
      "[protector.pkcs11]\n"
      "module = \"softhsm2\"\n"
      "token_label = \"coffer\"\n";

  std::string dir_;
};

TEST_F(ConfigTest, ShippedExampleParsesToTheDocumentedDefaults) {
  auto c = load_config(std::string(COFFER_SOURCE_DIR) + "/daemon/cofferd.example.toml");
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_EQ(c->listener.address, "127.0.0.1");
  EXPECT_EQ(c->listener.port, 8200);
  EXPECT_EQ(c->listener.connection_timeout_seconds, 30u);
  EXPECT_EQ(c->listener.tls_ticket_lifetime_seconds, 3600u);
  EXPECT_EQ(c->listener.max_request_bytes, 1048576u);
  EXPECT_EQ(c->max_json_depth, 32u);
  EXPECT_EQ(c->storage_path, "/var/lib/coffer/coffer.db");
  EXPECT_EQ(c->pkcs11.module, "softhsm2");
  EXPECT_EQ(c->pkcs11.key_label, "coffer-mk-1");
  EXPECT_EQ(c->pin_credential, "coffer-pkcs11-pin");
  EXPECT_EQ(c->token_default_ttl_seconds, 900);
  EXPECT_EQ(c->token_max_ttl_seconds, 86400);
}

TEST_F(ConfigTest, MinimalConfigGetsSafeDefaults) {
  auto c = load_config(write(kMinimal));
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_EQ(c->listener.address, "127.0.0.1");
  EXPECT_EQ(c->listener.tls_ticket_lifetime_seconds, 3600u);
  EXPECT_EQ(c->token_default_ttl_seconds, 900);
}

TEST_F(ConfigTest, TlsTicketLifetimeTurnsOffAndIsBounded) {
  const std::string listener =
      "[listener]\ntls_cert_file = \"/c.crt\"\ntls_key_file = \"/c.key\"\nclient_ca_file = \"/ca.pem\"\n";
  const std::string pkcs11 = "[protector.pkcs11]\nmodule = \"softhsm2\"\ntoken_label = \"coffer\"\n";
  auto off = load_config(write(listener + "tls_ticket_lifetime = \"0s\"\n" + pkcs11));
  ASSERT_TRUE(off.ok()) << off.status().to_string();
  EXPECT_EQ(off->listener.tls_ticket_lifetime_seconds, 0u);
  auto ten = load_config(write(listener + "tls_ticket_lifetime = \"10m\"\n" + pkcs11));
  ASSERT_TRUE(ten.ok()) << ten.status().to_string();
  EXPECT_EQ(ten->listener.tls_ticket_lifetime_seconds, 600u);
  auto long_lived = load_config(write(listener + "tls_ticket_lifetime = \"48h\"\n" + pkcs11));
  ASSERT_FALSE(long_lived.ok());
  EXPECT_NE(long_lived.status().message().find("listener.tls_ticket_lifetime"), std::string::npos)
      << long_lived.status().message();
}

TEST_F(ConfigTest, UnknownKeyIsRefusedWithItsName) {
  auto c = load_config(write(std::string(kMinimal) + "[tokens]\ndefault_tll = \"1h\"\n"));
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("tokens.default_tll"), std::string::npos) << c.status().message();
  EXPECT_NE(c.status().message().find(dir_), std::string::npos);
}

TEST_F(ConfigTest, BadValuesAreRefused) {
  const std::pair<const char*, const char*> cases[] = {
      {"[tokens]\ndefault_ttl = \"soon\"\n", "tokens.default_ttl"},
      {"[tokens]\ndefault_ttl = \"48h\"\nmax_ttl = \"24h\"\n", "tokens.default_ttl"},
      {"[log]\nlevel = \"loud\"\n", "log.level"},
      {"[protector]\ntype = \"tpm1.2\"\n", "protector.type"},
      {"[storage]\npath = 7\n", "storage.path"},
      {"[audit]\npath = \"/var/log/coffer/audit.log\"\nrotate_interval = \"30s\"\n", "audit.rotate_interval"},
  };
  for (const auto& [extra, key] : cases) {
    auto c = load_config(write(std::string(kMinimal) + extra));
    ASSERT_FALSE(c.ok()) << extra;
    EXPECT_NE(c.status().message().find(key), std::string::npos) << c.status().message();
  }
}

TEST_F(ConfigTest, Pkcs11ModuleIsRequired) {
  auto c = load_config(write(
      "[listener]\ntls_cert_file = \"/c\"\ntls_key_file = \"/k\"\nclient_ca_file = \"/ca\"\n"
      "[protector.pkcs11]\ntoken_label = \"coffer\"\n"));
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("protector.pkcs11.module"), std::string::npos) << c.status().message();
}

TEST_F(ConfigTest, AuditRotationSettings) {
  auto c = load_config(write(std::string(kMinimal) +
                             "[audit]\npath = \"/var/log/coffer/audit.log\"\nrotate_interval = \"24h\"\n"));
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_EQ(c->audit_rotate_seconds, 86400);
  auto never = load_config(write(std::string(kMinimal) + "[audit]\npath = \"/a.log\"\nrotate_interval = 0\n"));
  ASSERT_TRUE(never.ok()) << never.status().to_string();
  EXPECT_EQ(never->audit_rotate_seconds, 0);
}

TEST_F(ConfigTest, BruteForceLimitsAreOnByDefault) {
  auto c = load_config(write(kMinimal));
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  const api::RateLimitSettings defaults;
  EXPECT_TRUE(c->rate_limit.enabled);
  EXPECT_EQ(c->rate_limit.login.identity.rate, defaults.login.identity.rate);
  EXPECT_EQ(c->rate_limit.read.address.burst, defaults.read.address.burst);
  EXPECT_EQ(c->rate_limit.max_buckets, 16384u);
  EXPECT_TRUE(c->lockout.enabled);
  EXPECT_EQ(c->lockout.threshold, 5u);
  EXPECT_EQ(c->lockout.duration_seconds, 900);
  EXPECT_EQ(c->lockout.counter_reset_seconds, 900);

  // The shipped example states the same values.
  auto example = load_config(std::string(COFFER_SOURCE_DIR) + "/daemon/cofferd.example.toml");
  ASSERT_TRUE(example.ok()) << example.status().to_string();
  const auto same = [](const api::ClassLimits& a, const api::ClassLimits& b) {
    return a.identity.rate == b.identity.rate && a.identity.burst == b.identity.burst &&
           a.address.rate == b.address.rate && a.address.burst == b.address.burst;
  };
  EXPECT_TRUE(same(example->rate_limit.login, defaults.login));
  EXPECT_TRUE(same(example->rate_limit.read, defaults.read));
  EXPECT_TRUE(same(example->rate_limit.write, defaults.write));
  EXPECT_EQ(example->rate_limit.max_buckets, defaults.max_buckets);
  EXPECT_EQ(example->lockout.threshold, 5u);
  EXPECT_EQ(example->lockout.duration_seconds, 900);
}

TEST_F(ConfigTest, BruteForceLimitsAreConfigurable) {
  auto c = load_config(write(std::string(kMinimal) +
                             "[rate_limit]\nenabled = true\nmax_buckets = 2048\n"
                             "[rate_limit.login]\nidentity_rate = 0.5\nidentity_burst = 3\n"
                             "address_rate = 2\naddress_burst = 40\n"
                             "[lockout]\nthreshold = 3\nduration = \"2s\"\ncounter_reset = 60\n"));
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_EQ(c->rate_limit.max_buckets, 2048u);
  EXPECT_EQ(c->rate_limit.login.identity.rate, 0.5);
  EXPECT_EQ(c->rate_limit.login.identity.burst, 3.0);
  EXPECT_EQ(c->rate_limit.login.address.rate, 2.0);
  EXPECT_EQ(c->rate_limit.login.address.burst, 40.0);
  EXPECT_EQ(c->rate_limit.read.identity.rate, api::RateLimitSettings{}.read.identity.rate);  // untouched
  EXPECT_EQ(c->lockout.threshold, 3u);
  EXPECT_EQ(c->lockout.duration_seconds, 2);
  EXPECT_EQ(c->lockout.counter_reset_seconds, 60);

  auto off = load_config(write(std::string(kMinimal) + "[rate_limit]\nenabled = false\n[lockout]\nenabled = false\n"));
  ASSERT_TRUE(off.ok()) << off.status().to_string();
  EXPECT_FALSE(off->rate_limit.enabled);
  EXPECT_FALSE(off->lockout.enabled);
}

TEST_F(ConfigTest, BadBruteForceLimitsNameTheKey) {
  const std::pair<const char*, const char*> cases[] = {
      {"[rate_limit]\nenabled = \"yes\"\n", "rate_limit.enabled"},
      {"[rate_limit]\nmax_buckets = 10\n", "rate_limit.max_buckets"},
      {"[rate_limit]\nburst = 10\n", "rate_limit.burst"},
      {"[rate_limit]\nlogin = 5\n", "rate_limit.login"},
      {"[rate_limit.login]\nidentity_rate = 0\n", "rate_limit.login.identity_rate"},
      {"[rate_limit.read]\naddress_rate = -1.5\n", "rate_limit.read.address_rate"},
      {"[rate_limit.write]\nidentity_rate = \"fast\"\n", "rate_limit.write.identity_rate"},
      {"[rate_limit.write]\nidentity_rate = nan\n", "rate_limit.write.identity_rate"},
      {"[rate_limit.login]\nidentity_burst = 0\n", "rate_limit.login.identity_burst"},
      {"[rate_limit.login]\naddress_burst = 2.5\n", "rate_limit.login.address_burst"},
      {"[rate_limit.login]\nrate = 1\n", "rate_limit.login.rate"},
      {"[lockout]\nthreshold = 0\n", "lockout.threshold"},
      {"[lockout]\nduration = \"forever\"\n", "lockout.duration"},
      {"[lockout]\ncounter_reset = 0\n", "lockout.counter_reset"},
      {"[lockout]\nduration = \"400d\"\n", "lockout.duration"},
      {"[lockout]\nlockout_threshold = 5\n", "lockout.lockout_threshold"},
      {"lockout = 5\n", "lockout"},
  };
  for (const auto& [extra, key] : cases) {
    // Top-level keys must come before the first table header.
    const std::string text = extra[0] == '[' ? std::string(kMinimal) + extra : std::string(extra) + kMinimal;
    auto c = load_config(write(text));
    ASSERT_FALSE(c.ok()) << extra;
    EXPECT_NE(c.status().message().find(std::string(key) + ":"), std::string::npos) << c.status().message();
  }
}

// [api]: response wrapping's maximum TTL (never above tokens.max_ttl) and the nonce window.
TEST_F(ConfigTest, ApiSection) {
  auto defaults = load_config(write(kMinimal));
  ASSERT_TRUE(defaults.ok()) << defaults.status().to_string();
  EXPECT_EQ(defaults->max_wrapping_ttl_seconds, 86400);
  EXPECT_EQ(defaults->nonce_window_seconds, 300);
  auto example = load_config(std::string(COFFER_SOURCE_DIR) + "/daemon/cofferd.example.toml");
  ASSERT_TRUE(example.ok()) << example.status().to_string();
  EXPECT_EQ(example->max_wrapping_ttl_seconds, 86400);
  EXPECT_EQ(example->nonce_window_seconds, 300);
  // Without [api], the maximum follows a shorter tokens.max_ttl.
  auto short_tokens = load_config(write(std::string(kMinimal) + "[tokens]\ndefault_ttl = \"5m\"\nmax_ttl = \"1h\"\n"));
  ASSERT_TRUE(short_tokens.ok()) << short_tokens.status().to_string();
  EXPECT_EQ(short_tokens->max_wrapping_ttl_seconds, 3600);
  auto set = load_config(write(std::string(kMinimal) + "[api]\nmax_wrapping_ttl = \"10m\"\nnonce_window = \"90s\"\n"));
  ASSERT_TRUE(set.ok()) << set.status().to_string();
  EXPECT_EQ(set->max_wrapping_ttl_seconds, 600);
  EXPECT_EQ(set->nonce_window_seconds, 90);
  const std::pair<const char*, const char*> bad[] = {
      {"[api]\nmax_wrapping_ttl = \"48h\"\n", "api.max_wrapping_ttl"},
      {"[api]\nmax_wrapping_ttl = \"0s\"\n", "api.max_wrapping_ttl"},
      {"[api]\nnonce_window = \"2d\"\n", "api.nonce_window"},
      {"[api]\nnonce_window = \"soon\"\n", "api.nonce_window"},
      {"[api]\nnonce = \"5m\"\n", "api.nonce"},
  };
  for (const auto& [extra, key] : bad) {
    auto c = load_config(write(std::string(kMinimal) + extra));
    ASSERT_FALSE(c.ok()) << extra;
    EXPECT_NE(c.status().message().find(std::string(key) + ":"), std::string::npos) << c.status().message();
  }
}

TEST_F(ConfigTest, MutualTlsFilesAreRequired) {
  auto c = load_config(write("[protector.pkcs11]\ntoken_label = \"coffer\"\n"));
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("client_ca_file"), std::string::npos);
}

TEST_F(ConfigTest, ExactlyOneTokenSelector) {
  auto both = load_config(write(std::string(kMinimal) + "token_uri = \"pkcs11:token=coffer\"\n"));
  EXPECT_FALSE(both.ok());
  auto c = load_config(write(
      "[listener]\ntls_cert_file = \"/c\"\ntls_key_file = \"/k\"\nclient_ca_file = \"/ca\"\n"));
  EXPECT_FALSE(c.ok());
}

TEST_F(ConfigTest, SyntaxErrorNamesLineAndColumn) {
  auto c = load_config(write("[listener\n"));
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find(":1:"), std::string::npos) << c.status().message();
}

TEST_F(ConfigTest, MissingFileIsNotFound) {
  auto c = load_config(dir_ + "/nope.toml");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), Code::not_found);
}

}  // namespace
}  // namespace coffer::daemon
