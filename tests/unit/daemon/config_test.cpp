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
  EXPECT_EQ(c->token_default_ttl_seconds, 900);
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
