// The [protector.tpm] section of cofferd.toml: parsed into TpmConfig, and mistakes refused with
// the key named (the general config rules are tested in tests/unit/daemon/config_test.cpp).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "daemon/config.h"

namespace coffer::daemon {
namespace {

class TpmConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/coffer-tpm-config-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  Result<Config> load(const std::string& protector) {
    const std::string path = dir_ + "/cofferd.toml";
    std::ofstream(path) << "[listener]\ntls_cert_file = \"/c.crt\"\ntls_key_file = \"/c.key\"\n"
                           "client_ca_file = \"/ca.pem\"\n"
                        << protector;
    return load_config(path);
  }

  std::string dir_;
};

TEST_F(TpmConfigTest, DefaultsNeedOnlyTheType) {
  auto c = load("[protector]\ntype = \"tpm\"\n");
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_EQ(c->protector_type, "tpm");
  EXPECT_EQ(c->tpm.tcti, "device:/dev/tpmrm0");
  EXPECT_EQ(c->tpm.pcrs, std::vector<std::uint32_t>{7});
  EXPECT_EQ(c->tpm.key_blob_file, "/var/lib/coffer/tpm-master-key.json");
  EXPECT_EQ(c->tpm.key_id, "coffer-mk-1");
  EXPECT_TRUE(c->tpm_auth_credential.empty());
  EXPECT_TRUE(c->tpm_policy_public_key.empty());
  EXPECT_TRUE(c->tpm_pcr_approvals_file.empty());
}

TEST_F(TpmConfigTest, SignedPcrPolicyOptionsAreRead) {
  auto c = load(
      "[protector]\ntype = \"tpm\"\n[protector.tpm]\n"
      "policy_public_key = \"/etc/coffer/pcr-policy.pub.pem\"\n"
      "pcr_approvals_file = \"/etc/coffer/pcr-approvals.json\"\n");
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_EQ(c->tpm_policy_public_key, "/etc/coffer/pcr-policy.pub.pem");
  EXPECT_EQ(c->tpm_pcr_approvals_file, "/etc/coffer/pcr-approvals.json");
}

TEST_F(TpmConfigTest, EveryOptionIsRead) {
  auto c = load(
      "[protector]\ntype = \"tpm\"\n[protector.tpm]\ntcti = \"swtpm:host=127.0.0.1,port=2321\"\n"
      "pcrs = [7, 11, 16]\nkey_blob_file = \"/srv/mk.json\"\nkey_id = \"mk-2\"\n"
      "auth_credential = \"coffer-tpm-auth\"\n");
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_EQ(c->tpm.tcti, "swtpm:host=127.0.0.1,port=2321");
  EXPECT_EQ(c->tpm.pcrs, (std::vector<std::uint32_t>{7, 11, 16}));
  EXPECT_EQ(c->tpm.key_blob_file, "/srv/mk.json");
  EXPECT_EQ(c->tpm.key_id, "mk-2");
  EXPECT_EQ(c->tpm_auth_credential, "coffer-tpm-auth");
}

TEST_F(TpmConfigTest, MistakesAreRefusedNamingTheKey) {
  const std::pair<const char*, const char*> cases[] = {
      {"pcrs = []\n", "protector.tpm.pcrs"},
      {"pcrs = [24]\n", "protector.tpm.pcrs"},
      {"pcrs = [7, 7]\n", "protector.tpm.pcrs"},
      {"pcrs = 7\n", "protector.tpm.pcrs"},
      {"key_blob_file = \"relative.json\"\n", "protector.tpm.key_blob_file"},
      {"tcti = \"\"\n", "protector.tpm.tcti"},
      {"auth_credential = \"/etc/secret\"\n", "protector.tpm.auth_credential"},
      {"handle = 0x81000001\n", "protector.tpm.handle"},
      {"policy_public_key = \"k.pem\"\npcr_approvals_file = \"/a.json\"\n", "protector.tpm.policy_public_key"},
      {"policy_public_key = \"/k.pem\"\npcr_approvals_file = \"a.json\"\n", "protector.tpm.pcr_approvals_file"},
      {"policy_public_key = \"/k.pem\"\n", "protector.tpm.policy_public_key"},
      {"pcr_approvals_file = \"/a.json\"\n", "protector.tpm.pcr_approvals_file"},
      {"policy_public_key = 1\n", "protector.tpm.policy_public_key"},
  };
  for (const auto& [extra, key] : cases) {
    auto c = load(std::string("[protector]\ntype = \"tpm\"\n[protector.tpm]\n") + extra);
    ASSERT_FALSE(c.ok()) << extra;
    EXPECT_NE(c.status().message().find(key), std::string::npos) << c.status().to_string();
  }
}

}  // namespace
}  // namespace coffer::daemon
