// TpmProtector beyond the shared contract: what a TPM adds (PCR binding, auth value and
// dictionary-attack lockout, a TPM that goes away and comes back, a key blob from another TPM),
// each on its own swtpm, each checked for leaked transient handles and sessions afterwards.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <memory>

#include "crypto/encoding.h"
#include "crypto/random.h"
#include "tests/support/swtpm_fixture.h"
#include "tpm/tpm_protector.h"

namespace coffer::tpm {
namespace {

constexpr char kPcrMessage[] =
    "PCR 16 changed since the key was sealed; run the recovery ceremony or restore the measured "
    "state";

class TpmProtectorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto f = testing::SwtpmFixture::create();
    ASSERT_TRUE(f.ok()) << f.status().to_string();
    tpm_ = std::move(f).value();
    config_.tcti = tpm_->tcti();
    config_.pcrs = {16};
    config_.key_blob_file = tpm_->dir() + "/coffer-mk.json";
  }

  void TearDown() override {
    protector_.reset();
    auto objects = tpm_->transient_objects();
    ASSERT_TRUE(objects.ok()) << objects.status().to_string();
    EXPECT_EQ(*objects, 0) << "transient TPM objects leaked";
    auto sessions = tpm_->loaded_sessions();
    ASSERT_TRUE(sessions.ok()) << sessions.status().to_string();
    EXPECT_EQ(*sessions, 0) << "TPM sessions leaked";
  }

  std::unique_ptr<TpmProtector> open(const std::string& auth = "") {
    auto p = TpmProtector::open(config_, crypto::SecretBytes::copy_of(auth));
    EXPECT_TRUE(p.ok()) << p.status().to_string();
    return p.ok() ? std::move(p).value() : nullptr;
  }

  static crypto::SecretBytes dek() { return std::move(crypto::random_key(32)).value(); }

  std::unique_ptr<testing::SwtpmFixture> tpm_;
  TpmConfig config_;
  std::unique_ptr<TpmProtector> protector_;
};

TEST_F(TpmProtectorTest, KeyBlobFileIsPrivateAndANewInstanceStillUnwraps) {
  protector_ = open();
  ASSERT_TRUE(protector_);
  ASSERT_TRUE(protector_->create_master_key().ok());
  struct stat st{};
  ASSERT_EQ(::stat(config_.key_blob_file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  auto key = dek();
  auto wrapped = protector_->wrap(key);
  ASSERT_TRUE(wrapped.ok()) << wrapped.status().to_string();
  protector_ = open();  // the daemon restarting
  ASSERT_TRUE(protector_);
  auto back = protector_->unwrap(*wrapped);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_TRUE(back->equals(key));
  EXPECT_TRUE(protector_->self_test().ok());
}

TEST_F(TpmProtectorTest, ExtendingABoundPcrRefusesWithThePcrMessageUntilRestored) {
  protector_ = open();
  ASSERT_TRUE(protector_);
  ASSERT_TRUE(protector_->create_master_key().ok());
  auto key = dek();
  auto wrapped = protector_->wrap(key);
  ASSERT_TRUE(wrapped.ok()) << wrapped.status().to_string();

  ASSERT_TRUE(tpm_->extend_pcr(16).ok());
  auto refused = protector_->unwrap(*wrapped);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), Code::failed_precondition);
  EXPECT_NE(refused.status().message().find(kPcrMessage), std::string::npos)
      << refused.status().to_string();
  EXPECT_EQ(protector_->self_test().code(), Code::failed_precondition);

  ASSERT_TRUE(tpm_->reset_pcr(16).ok());  // the measured state restored
  auto back = protector_->unwrap(*wrapped);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_TRUE(back->equals(key));
}

TEST_F(TpmProtectorTest, AnUnboundPcrDoesNotMatter) {
  protector_ = open();
  ASSERT_TRUE(protector_);
  ASSERT_TRUE(protector_->create_master_key().ok());
  auto wrapped = protector_->wrap(dek());
  ASSERT_TRUE(wrapped.ok());
  ASSERT_TRUE(tpm_->extend_pcr(23).ok());
  EXPECT_TRUE(protector_->unwrap(*wrapped).ok());
}

TEST_F(TpmProtectorTest, SimulatorRebootWithTheSameMeasurementsStillUnwraps) {
  protector_ = open();
  ASSERT_TRUE(protector_);
  ASSERT_TRUE(protector_->create_master_key().ok());
  auto key = dek();
  auto wrapped = protector_->wrap(key);
  ASSERT_TRUE(wrapped.ok());
  ASSERT_TRUE(tpm_->restart().ok());  // TPM2_Startup(CLEAR): PCRs back to their reset values
  auto back = protector_->unwrap(*wrapped);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_TRUE(back->equals(key));
}

TEST_F(TpmProtectorTest, WrongAuthValueIsRefusedAndCountedTowardLockout) {
  protector_ = open("right auth value");
  ASSERT_TRUE(protector_);
  ASSERT_TRUE(protector_->create_master_key().ok());
  auto key = dek();
  auto wrapped = protector_->wrap(key);
  ASSERT_TRUE(wrapped.ok());

  auto wrong = open("wrong auth value");
  ASSERT_TRUE(wrong);
  auto refused = wrong->unwrap(*wrapped);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), Code::permission_denied) << refused.status().to_string();
  EXPECT_NE(refused.status().message().find("dictionary-attack counter is now 1 of"),
            std::string::npos)
      << refused.status().to_string();

  auto back = protector_->unwrap(*wrapped);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_TRUE(back->equals(key));
}

TEST_F(TpmProtectorTest, RepeatedWrongAuthEndsInLockoutWithItsOwnMessage) {
  protector_ = open("right auth value");
  ASSERT_TRUE(protector_);
  ASSERT_TRUE(protector_->create_master_key().ok());
  auto wrapped = protector_->wrap(dek());
  ASSERT_TRUE(wrapped.ok());
  auto wrong = open("wrong auth value");
  ASSERT_TRUE(wrong);
  Status last;
  for (int i = 0; i < 64 && last.code() != Code::unavailable; ++i) {
    last = wrong->unwrap(*wrapped).status();
  }
  EXPECT_EQ(last.code(), Code::unavailable) << last.to_string();
  EXPECT_NE(last.message().find("dictionary-attack lockout"), std::string::npos)
      << last.to_string();
  // The right value is refused too while the TPM is locked out: fail closed.
  EXPECT_EQ(protector_->unwrap(*wrapped).status().code(), Code::unavailable);
}

TEST_F(TpmProtectorTest, ConfigurationThatDisagreesWithTheKeyBlobIsRefusedAtOpen) {
  protector_ = open();
  ASSERT_TRUE(protector_);
  ASSERT_TRUE(protector_->create_master_key().ok());

  TpmConfig other_pcrs = config_;
  other_pcrs.pcrs = {7, 16};
  auto p1 = TpmProtector::open(other_pcrs, crypto::SecretBytes());
  EXPECT_EQ(p1.status().code(), Code::failed_precondition) << p1.status().to_string();

  auto p2 = TpmProtector::open(config_, crypto::SecretBytes::copy_of("unexpected"));
  EXPECT_EQ(p2.status().code(), Code::failed_precondition) << p2.status().to_string();

  TpmConfig other_id = config_;
  other_id.key_id = "coffer-mk-2";
  auto p3 = TpmProtector::open(other_id, crypto::SecretBytes());
  EXPECT_EQ(p3.status().code(), Code::failed_precondition) << p3.status().to_string();

  TpmConfig no_pcrs = config_;
  no_pcrs.pcrs = {};
  EXPECT_EQ(TpmProtector::open(no_pcrs, crypto::SecretBytes()).status().code(),
            Code::invalid_argument);
  TpmConfig bad_pcr = config_;
  bad_pcr.pcrs = {24};
  EXPECT_EQ(TpmProtector::open(bad_pcr, crypto::SecretBytes()).status().code(),
            Code::invalid_argument);
}

TEST_F(TpmProtectorTest, KeyBlobFromAnotherTpmIsRefused) {
  protector_ = open();
  ASSERT_TRUE(protector_);
  ASSERT_TRUE(protector_->create_master_key().ok());
  auto wrapped = protector_->wrap(dek());
  ASSERT_TRUE(wrapped.ok());

  auto other = testing::SwtpmFixture::create();
  ASSERT_TRUE(other.ok()) << other.status().to_string();
  TpmConfig moved = config_;
  moved.tcti = (*other)->tcti();
  auto p = TpmProtector::open(moved, crypto::SecretBytes());
  ASSERT_TRUE(p.ok()) << p.status().to_string();
  auto r = (*p)->unwrap(*wrapped);
  EXPECT_EQ(r.status().code(), Code::failed_precondition) << r.status().to_string();
  // Caught before any key is loaded or any DEK encrypted: the SRK is pinned in the key blob.
  EXPECT_NE(r.status().message().find("storage root key is not the one"), std::string::npos)
      << r.status().to_string();
  EXPECT_EQ((*p)->wrap(dek()).status().code(), Code::failed_precondition);
  p->reset();
  auto leaked = (*other)->transient_objects();
  ASSERT_TRUE(leaked.ok());
  EXPECT_EQ(*leaked, 0);
}

TEST_F(TpmProtectorTest, UnreachableTpmIsUnavailableAndRecoversWhenItReturns) {
  protector_ = open();
  ASSERT_TRUE(protector_);
  ASSERT_TRUE(protector_->create_master_key().ok());
  auto key = dek();
  auto wrapped = protector_->wrap(key);
  ASSERT_TRUE(wrapped.ok());

  tpm_->kill();
  auto r = protector_->unwrap(*wrapped);
  EXPECT_EQ(r.status().code(), Code::unavailable) << r.status().to_string();
  EXPECT_EQ(protector_->wrap(key).status().code(), Code::unavailable);

  ASSERT_TRUE(tpm_->restart().ok());
  auto back = protector_->unwrap(*wrapped);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_TRUE(back->equals(key));
}

TEST_F(TpmProtectorTest, DescribeNamesTheTpmThePcrsAndTheKey) {
  protector_ = open();
  ASSERT_TRUE(protector_);
  const keys::ProtectorInfo info = protector_->describe();
  EXPECT_EQ(info.kind, "tpm");
  EXPECT_EQ(info.master_key_id, "coffer-mk-1");
  EXPECT_EQ(info.mechanism, "TPM2_RSA_OAEP_SHA256");
  EXPECT_NE(info.detail.find("PCRs sha256:16"), std::string::npos) << info.detail;
  EXPECT_NE(info.detail.find(config_.key_blob_file), std::string::npos) << info.detail;
}

// Parameter encryption, checked on the wire: tpm2-tss's pcap TCTI records every command and
// response between coffer and the TPM; the DEK must appear in none of them. Control: the MK's
// public modulus, which TPM2_Load sends in clear, is found in the same capture.
TEST_F(TpmProtectorTest, NoDekCrossesTheBusInClear) {
  const std::string capture = tpm_->dir() + "/bus.pcap";
  ::setenv("TCTI_PCAP_FILE", capture.c_str(), 1);
  config_.tcti = "pcap:" + tpm_->tcti();
  protector_ = open("an auth value");
  ASSERT_TRUE(protector_);
  ASSERT_TRUE(protector_->create_master_key().ok());
  auto key = dek();
  auto wrapped = protector_->wrap(key);
  ASSERT_TRUE(wrapped.ok()) << wrapped.status().to_string();
  auto back = protector_->unwrap(*wrapped);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  ASSERT_TRUE(back->equals(key));
  ::unsetenv("TCTI_PCAP_FILE");

  std::ifstream in(capture, std::ios::binary);
  const std::string bus((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_GT(bus.size(), 1000u) << "nothing captured";
  const std::string dek_bytes(key.view(crypto::reveal()));
  EXPECT_EQ(bus.find(dek_bytes.substr(0, 16)), std::string::npos) << "DEK (first half) in clear";
  EXPECT_EQ(bus.find(dek_bytes.substr(16)), std::string::npos) << "DEK (second half) in clear";
  EXPECT_EQ(bus.find("an auth value"), std::string::npos) << "auth value in clear";

  std::ifstream blob_in(config_.key_blob_file);
  const std::string blob((std::istreambuf_iterator<char>(blob_in)), std::istreambuf_iterator<char>());
  const auto at = blob.find("\"public\": \"");
  ASSERT_NE(at, std::string::npos);
  // The public area's last 32 bytes are the end of the RSA modulus.
  const std::string hex = blob.substr(at + 11, blob.find('"', at + 11) - (at + 11));
  auto pub = crypto::from_hex(hex);
  ASSERT_TRUE(pub && pub->size() > 64);
  const std::string modulus_tail(pub->end() - 32, pub->end());
  EXPECT_NE(bus.find(modulus_tail), std::string::npos) << "control failed: capture unusable";
}

// Not an assertion on speed: records the cost of one unwrap (connect, SRK, load, salted policy
// session, PolicyPCR, RSA_Decrypt, flushes) for the design notes.
TEST_F(TpmProtectorTest, MeasuresUnwrapTime) {
  protector_ = open();
  ASSERT_TRUE(protector_);
  ASSERT_TRUE(protector_->create_master_key().ok());
  auto wrapped = protector_->wrap(dek());
  ASSERT_TRUE(wrapped.ok());
  constexpr int kRounds = 20;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kRounds; ++i) ASSERT_TRUE(protector_->unwrap(*wrapped).ok());
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count() /
      kRounds;
  std::printf("unwrap on swtpm: %.2f ms per call (mean of %d)\n", ms, kRounds);
  RecordProperty("unwrap_ms", std::to_string(ms));
}

}  // namespace
}  // namespace coffer::tpm
