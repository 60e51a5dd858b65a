// Signed PCR policies (PolicyAuthorize, docs/design/tpm.md): a master key bound to the operator's
// policy signing key instead of literal PCR values. An update the operator approved (a PCR policy
// signed with that key) keeps the key usable; a PCR change nobody approved, an approval signed by
// another key, or a tampered approval does not. Each test on its own swtpm, checked for leaked
// transient handles and sessions. The operator's key is made here with OpenSSL, as an offline
// signer (the future `cofferctl tpm sign-policy`) would use it.
#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "crypto/random.h"
#include "tests/support/swtpm_fixture.h"
#include "tpm/tpm_protector.h"

namespace coffer::tpm {
namespace {

constexpr char kPcrMessage[] =
    "PCR 16 changed since the key was sealed; run the recovery ceremony or restore the measured "
    "state";
constexpr char kNotSigned[] = "no approved PCR policy for the present PCR values is signed by the policy signing key";

// An RSA-2048 operator key: its modulus for the protector, and a signer for approvals.
class OperatorKey {
 public:
  OperatorKey() : key_(EVP_RSA_gen(2048), EVP_PKEY_free) {}

  std::vector<std::uint8_t> modulus() const {
    BIGNUM* n = nullptr;
    EXPECT_EQ(EVP_PKEY_get_bn_param(key_.get(), OSSL_PKEY_PARAM_RSA_N, &n), 1);
    std::vector<std::uint8_t> out(256);
    EXPECT_EQ(BN_bn2binpad(n, out.data(), static_cast<int>(out.size())), 256);
    BN_free(n);
    return out;
  }

  // RSASSA-PKCS1-v1_5 with SHA-256 over `message` (OpenSSL hashes it: SHA-256(message) is the
  // aHash TPM2_VerifySignature checks).
  std::vector<std::uint8_t> sign(const std::vector<std::uint8_t>& message) const {
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    EXPECT_EQ(EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key_.get()), 1);
    std::size_t len = 0;
    EXPECT_EQ(EVP_DigestSign(ctx.get(), nullptr, &len, message.data(), message.size()), 1);
    std::vector<std::uint8_t> sig(len);
    EXPECT_EQ(EVP_DigestSign(ctx.get(), sig.data(), &len, message.data(), message.size()), 1);
    sig.resize(len);
    return sig;
  }

  // The operator approving a PCR policy: sign policyDigest || policyRef (the key id).
  PcrApproval approve(const std::map<std::uint32_t, std::vector<std::uint8_t>>& values,
                      const std::string& key_id) const {
    PcrApproval a;
    for (const auto& [pcr, value] : values) a.pcrs.push_back(pcr);
    auto digest = pcr_policy_digest(values);
    EXPECT_TRUE(digest.ok()) << digest.status().to_string();
    a.policy_digest = *digest;
    std::vector<std::uint8_t> message = a.policy_digest;
    message.insert(message.end(), key_id.begin(), key_id.end());
    a.signature = sign(message);
    return a;
  }

 private:
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key_;
};

class TpmPolicyAuthorizeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto f = testing::SwtpmFixture::create();
    ASSERT_TRUE(f.ok()) << f.status().to_string();
    tpm_ = std::move(f).value();
    config_.tcti = tpm_->tcti();
    config_.pcrs = {16};
    config_.key_blob_file = tpm_->dir() + "/coffer-mk.json";
    policies_.policy_key_modulus = operator_.modulus();
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

  // The daemon (re)starting with the approvals it finds next to the key blob.
  std::unique_ptr<TpmProtector> open(std::vector<PcrApproval> approvals,
                                     const std::string& auth = "") {
    policies_.approvals = std::move(approvals);
    auto p = TpmProtector::open(config_, crypto::SecretBytes::copy_of(auth), policies_);
    EXPECT_TRUE(p.ok()) << p.status().to_string();
    return p.ok() ? std::move(p).value() : nullptr;
  }

  // An approval, signed by `signer`, of the PCRs' present values.
  PcrApproval approve_present(const OperatorKey& signer,
                              const std::vector<std::uint32_t>& pcrs = {16}) {
    auto values = protector_->read_pcr_values(pcrs);
    EXPECT_TRUE(values.ok()) << values.status().to_string();
    return signer.approve(*values, config_.key_id);
  }

  // Creates the MK under the operator's key with an approval of the present PCR 16 and wraps a
  // key; returns the approval.
  PcrApproval init(const std::string& auth = "") {
    protector_ = open({}, auth);
    EXPECT_TRUE(protector_);
    if (!protector_) return {};
    EXPECT_TRUE(protector_->create_master_key().ok());
    PcrApproval boot = approve_present(operator_);
    protector_ = open({boot}, auth);
    if (!protector_) return boot;
    auto wrapped = protector_->wrap(key_);
    EXPECT_TRUE(wrapped.ok()) << wrapped.status().to_string();
    if (wrapped.ok()) wrapped_ = *wrapped;
    return boot;
  }

  void expect_unwraps() {
    auto back = protector_->unwrap(wrapped_);
    ASSERT_TRUE(back.ok()) << back.status().to_string();
    EXPECT_TRUE(back->equals(key_));
  }

  void expect_refused(Code code, const std::string& message) {
    auto refused = protector_->unwrap(wrapped_);
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.status().code(), code) << refused.status().to_string();
    EXPECT_NE(refused.status().message().find(message), std::string::npos)
        << refused.status().to_string();
  }

  std::unique_ptr<testing::SwtpmFixture> tpm_;
  OperatorKey operator_;
  TpmConfig config_;
  SignedPcrPolicies policies_;
  std::unique_ptr<TpmProtector> protector_;
  crypto::SecretBytes key_ = std::move(crypto::random_key(32)).value();
  keys::WrappedKey wrapped_;
};

TEST_F(TpmPolicyAuthorizeTest, AnApprovalOfThePresentPcrValuesUnwraps) {
  init();
  ASSERT_TRUE(protector_);
  expect_unwraps();
  EXPECT_TRUE(protector_->self_test().ok());
  EXPECT_NE(protector_->describe().detail.find("signed PCR policies"), std::string::npos);
  std::ifstream in(config_.key_blob_file);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("\"policy_authorize\""), std::string::npos) << text;
}

TEST_F(TpmPolicyAuthorizeTest, NoApprovalAtAllRefusesWithThePcrMessage) {
  init();
  ASSERT_TRUE(protector_);
  protector_ = open({});
  ASSERT_TRUE(protector_);
  auto refused = protector_->unwrap(wrapped_);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), Code::failed_precondition);
  EXPECT_NE(refused.status().message().find("sign an approval"), std::string::npos)
      << refused.status().to_string();
}

// The systemd/systemd#42028 scenario: the measured state changes (firmware or kernel update).
// Unapproved, the key is unusable; once the operator signs the new PCR policy it is usable again
// without a new master key or a re-wrap.
TEST_F(TpmPolicyAuthorizeTest, AnUnapprovedPcrChangeRefusesAndASignedNewPolicyKeepsTheKeyUsable) {
  const PcrApproval boot = init();
  ASSERT_TRUE(protector_);
  expect_unwraps();

  ASSERT_TRUE(tpm_->extend_pcr(16).ok());  // the update
  expect_refused(Code::failed_precondition, kPcrMessage);
  EXPECT_EQ(protector_->self_test().code(), Code::failed_precondition);

  const PcrApproval updated = approve_present(operator_);
  EXPECT_NE(updated.policy_digest, boot.policy_digest);
  protector_ = open({boot, updated});  // old and new approvals side by side
  ASSERT_TRUE(protector_);
  expect_unwraps();
  EXPECT_TRUE(protector_->self_test().ok());

  ASSERT_TRUE(tpm_->reset_pcr(16).ok());  // booting the old state again: its approval still works
  expect_unwraps();
}

// What makes updates painless: the operator predicts the PCR value after the update (here
// PCR16' = SHA-256(PCR16 || 0xaa..aa), the fixture's extension; in practice systemd-measure or
// the vendor's reference values) and ships the signed approval with the update, before rebooting.
TEST_F(TpmPolicyAuthorizeTest, AnApprovalForTheNextStateCanBeSignedBeforeTheUpdate) {
  const PcrApproval boot = init();
  ASSERT_TRUE(protector_);
  auto before = protector_->read_pcr_values({16});
  ASSERT_TRUE(before.ok()) << before.status().to_string();
  std::vector<std::uint8_t> extend = (*before)[16];
  extend.insert(extend.end(), 32, 0xaa);
  std::vector<std::uint8_t> predicted(32);
  unsigned int len = 0;
  ASSERT_EQ(EVP_Digest(extend.data(), extend.size(), predicted.data(), &len, EVP_sha256(), nullptr),
            1);
  protector_ = open({boot, operator_.approve({{16, predicted}}, config_.key_id)});
  ASSERT_TRUE(protector_);
  expect_unwraps();  // the old state still works (boot approval)

  ASSERT_TRUE(tpm_->extend_pcr(16).ok());  // the update
  auto after = protector_->read_pcr_values({16});
  ASSERT_TRUE(after.ok());
  EXPECT_EQ((*after)[16], predicted);
  expect_unwraps();
}

TEST_F(TpmPolicyAuthorizeTest, AnApprovalSignedByAnotherKeyIsRefused) {
  const PcrApproval boot = init();
  ASSERT_TRUE(protector_);
  const OperatorKey intruder;

  // For the present state, signed by someone else.
  protector_ = open({approve_present(intruder)});
  ASSERT_TRUE(protector_);
  expect_refused(Code::permission_denied, kNotSigned);

  // After an update, signed by someone else: still refused.
  ASSERT_TRUE(tpm_->extend_pcr(16).ok());
  protector_ = open({boot, approve_present(intruder)});
  ASSERT_TRUE(protector_);
  expect_refused(Code::permission_denied, kNotSigned);
}

TEST_F(TpmPolicyAuthorizeTest, AForgedApprovalDoesNotHideAGenuineOne) {
  init();
  ASSERT_TRUE(protector_);
  const OperatorKey intruder;
  ASSERT_TRUE(tpm_->extend_pcr(16).ok());
  // Both approve the present state; the forged one comes first in the file.
  protector_ = open({approve_present(intruder), approve_present(operator_)});
  ASSERT_TRUE(protector_);
  expect_unwraps();
}

TEST_F(TpmPolicyAuthorizeTest, ATamperedApprovalIsRefused) {
  const PcrApproval boot = init();
  ASSERT_TRUE(protector_);
  ASSERT_TRUE(tpm_->extend_pcr(16).ok());
  const PcrApproval genuine_new = approve_present(operator_);

  // The old approval's signature with the new state's digest pasted in.
  PcrApproval pasted = boot;
  pasted.policy_digest = genuine_new.policy_digest;
  protector_ = open({pasted});
  ASSERT_TRUE(protector_);
  expect_refused(Code::permission_denied, kNotSigned);

  // A genuine approval with one signature bit flipped.
  PcrApproval flipped = genuine_new;
  flipped.signature[100] ^= 0x01;
  protector_ = open({flipped});
  ASSERT_TRUE(protector_);
  expect_refused(Code::permission_denied, kNotSigned);

  // A genuine approval whose digest was altered: it approves no state, so the PCR message.
  PcrApproval altered = genuine_new;
  altered.policy_digest[0] ^= 0x01;
  protector_ = open({altered});
  ASSERT_TRUE(protector_);
  expect_refused(Code::failed_precondition, kPcrMessage);

  // A signature over the right digest but another policyRef (another master key's approval).
  PcrApproval other_ref = genuine_new;
  std::vector<std::uint8_t> message = genuine_new.policy_digest;
  const std::string ref = "another-key";
  message.insert(message.end(), ref.begin(), ref.end());
  other_ref.signature = operator_.sign(message);
  protector_ = open({other_ref});
  ASSERT_TRUE(protector_);
  expect_refused(Code::permission_denied, kNotSigned);

  protector_ = open({genuine_new});  // control
  ASSERT_TRUE(protector_);
  expect_unwraps();
}

TEST_F(TpmPolicyAuthorizeTest, AnApprovalMayCoverOtherPcrsThanThoseRecordedAtInit) {
  init();
  ASSERT_TRUE(protector_);
  protector_ = open({approve_present(operator_, {16, 23})});
  ASSERT_TRUE(protector_);
  expect_unwraps();
  ASSERT_TRUE(tpm_->extend_pcr(23).ok());  // now PCR 23 matters: it is in the approved policy
  auto refused = protector_->unwrap(wrapped_);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), Code::failed_precondition) << refused.status().to_string();
}

TEST_F(TpmPolicyAuthorizeTest, WithAnAuthValueBothTheApprovalAndTheAuthValueAreNeeded) {
  init("right auth value");
  ASSERT_TRUE(protector_);
  expect_unwraps();
  const PcrApproval boot = policies_.approvals.front();
  protector_ = open({boot}, "wrong auth value");
  ASSERT_TRUE(protector_);
  expect_refused(Code::permission_denied, "refused the auth value");
}

TEST_F(TpmPolicyAuthorizeTest, ConfigurationMustNameTheSamePolicyKeyAsTheKeyBlob) {
  init();
  ASSERT_TRUE(protector_);
  protector_.reset();
  // The key blob names a policy key; a configuration without one, or with another, is refused.
  auto p = TpmProtector::open(config_, {});
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), Code::failed_precondition) << p.status().to_string();
  SignedPcrPolicies other = policies_;
  other.policy_key_modulus = OperatorKey().modulus();
  p = TpmProtector::open(config_, {}, other);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), Code::failed_precondition) << p.status().to_string();
  other.policy_key_modulus = {1, 2, 3};
  p = TpmProtector::open(config_, {}, other);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), Code::invalid_argument) << p.status().to_string();
}

TEST_F(TpmPolicyAuthorizeTest, APolicyKeyIsRefusedForAKeyBoundToLiteralPcrs) {
  auto plain = TpmProtector::open(config_, {});
  ASSERT_TRUE(plain.ok()) << plain.status().to_string();
  ASSERT_TRUE((*plain)->create_master_key().ok());
  plain->reset();
  auto p = TpmProtector::open(config_, {}, policies_);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), Code::failed_precondition) << p.status().to_string();
}

TEST(PcrPolicyDigest, RejectsBadInput) {
  EXPECT_EQ(pcr_policy_digest({}).status().code(), Code::invalid_argument);
  EXPECT_EQ(pcr_policy_digest({{16, std::vector<std::uint8_t>(20)}}).status().code(),
            Code::invalid_argument);
  EXPECT_EQ(pcr_policy_digest({{24, std::vector<std::uint8_t>(32)}}).status().code(),
            Code::invalid_argument);
  auto d = pcr_policy_digest({{16, std::vector<std::uint8_t>(32)}});
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->size(), 32u);
}

}  // namespace
}  // namespace coffer::tpm
