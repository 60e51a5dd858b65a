// The KeyProtector contract: every implementation must pass the same tests. Run here against
// Pkcs11Protector on a real SoftHSM token (one private token store per test), against
// TpmProtector on a real swtpm (one simulator per test, checked for leaked transient handles
// after each test) and against the software FakeProtector.
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <set>
#include <thread>
#include <vector>

#include "crypto/random.h"
#include "hsm/pkcs11_protector.h"
#include "keys/key_protector.h"
#include "tests/support/fake_protector.h"
#include "tests/support/softhsm_fixture.h"
#include "tests/support/swtpm_fixture.h"
#include "tpm/tpm_protector.h"

namespace coffer::keys {
namespace {

// What a test works on. The token store (if any) must outlive the protector using it, hence the
// member order: members are destroyed in reverse.
struct Subject {
  std::unique_ptr<testing::SoftHsmFixture> store;
  std::unique_ptr<testing::SwtpmFixture> tpm;
  std::unique_ptr<KeyProtector> protector;
};

struct SoftHsmPkcs11 {
  static Result<Subject> make() {
    Subject s;
    COFFER_ASSIGN_OR_RETURN(s.store, testing::SoftHsmFixture::create("coffer"));
    hsm::Pkcs11Config config;
    config.module = "softhsm2";
    config.token_label = s.store->label();
    COFFER_ASSIGN_OR_RETURN(s.protector, hsm::Pkcs11Protector::open(config, s.store->pin_secret()));
    return s;
  }
};

struct SwtpmTpm {
  static Result<Subject> make() {
    Subject s;
    COFFER_ASSIGN_OR_RETURN(s.tpm, testing::SwtpmFixture::create());
    tpm::TpmConfig config;
    config.tcti = s.tpm->tcti();
    config.pcrs = {7, 16};
    config.key_blob_file = s.tpm->dir() + "/coffer-mk.json";
    COFFER_ASSIGN_OR_RETURN(s.protector, tpm::TpmProtector::open(config, crypto::SecretBytes()));
    return s;
  }
};

struct Fake {
  static Result<Subject> make() {
    Subject s;
    s.protector = std::make_unique<testing::FakeProtector>();
    return s;
  }
};

struct ImplementationNames {
  template <typename T>
  static std::string GetName(int) {
    if constexpr (std::is_same_v<T, SoftHsmPkcs11>) return "SoftHsmPkcs11";
    if constexpr (std::is_same_v<T, SwtpmTpm>) return "SwtpmTpm";
    return "Fake";
  }
};

template <typename T>
class KeyProtectorContract : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = T::make();
    ASSERT_TRUE(s.ok()) << s.status().to_string();
    subject_ = std::move(s).value();
  }

  // A TPM test must leave no transient object or session behind (a raw TPM has 3 slots).
  void TearDown() override {
    subject_.protector.reset();
    if (subject_.tpm) {
      auto objects = subject_.tpm->transient_objects();
      ASSERT_TRUE(objects.ok()) << objects.status().to_string();
      EXPECT_EQ(*objects, 0) << "transient TPM objects leaked";
      auto sessions = subject_.tpm->loaded_sessions();
      ASSERT_TRUE(sessions.ok()) << sessions.status().to_string();
      EXPECT_EQ(*sessions, 0) << "TPM sessions leaked";
    }
  }

  KeyProtector& p() { return *subject_.protector; }

  void create() {
    Status s = p().create_master_key();
    ASSERT_TRUE(s.ok()) << s.to_string();
  }

  static crypto::SecretBytes random_dek() {
    auto k = crypto::random_key(32);
    EXPECT_TRUE(k.ok());
    return std::move(k).value();
  }

  Subject subject_;
};

using Implementations = ::testing::Types<SoftHsmPkcs11, SwtpmTpm, Fake>;
TYPED_TEST_SUITE(KeyProtectorContract, Implementations, ImplementationNames);

TYPED_TEST(KeyProtectorContract, CreateMakesTheMasterKeyPresent) {
  auto before = this->p().has_master_key();
  ASSERT_TRUE(before.ok()) << before.status().to_string();
  EXPECT_FALSE(*before);
  this->create();
  auto after = this->p().has_master_key();
  ASSERT_TRUE(after.ok()) << after.status().to_string();
  EXPECT_TRUE(*after);
}

TYPED_TEST(KeyProtectorContract, CreateTwiceIsAlreadyExistsAndKeepsTheFirstKey) {
  this->create();
  auto dek = this->random_dek();
  auto wrapped = this->p().wrap(dek);
  ASSERT_TRUE(wrapped.ok()) << wrapped.status().to_string();

  Status again = this->p().create_master_key();
  EXPECT_EQ(again.code(), Code::already_exists) << again.to_string();

  // Not overwritten: what the first key wrapped still unwraps.
  auto back = this->p().unwrap(*wrapped);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_TRUE(back->equals(dek));
}

TYPED_TEST(KeyProtectorContract, WrapUnwrapRoundTripsKeys) {
  this->create();
  std::set<std::vector<std::uint8_t>> blobs;
  for (int i = 0; i < 8; ++i) {
    auto dek = this->random_dek();
    auto wrapped = this->p().wrap(dek);
    ASSERT_TRUE(wrapped.ok()) << wrapped.status().to_string();
    EXPECT_FALSE(wrapped->blob.empty());
    EXPECT_FALSE(dek.equals(wrapped->blob)) << "the blob is the key itself";
    blobs.insert(wrapped->blob);
    auto back = this->p().unwrap(*wrapped);
    ASSERT_TRUE(back.ok()) << back.status().to_string();
    EXPECT_EQ(back->size(), 32u);
    EXPECT_TRUE(back->equals(dek));
  }
  EXPECT_EQ(blobs.size(), 8u) << "different keys must give different blobs";
}

TYPED_TEST(KeyProtectorContract, UnwrappedKeyIsInLockedMemory) {
  this->create();
  auto wrapped = this->p().wrap(this->random_dek());
  ASSERT_TRUE(wrapped.ok()) << wrapped.status().to_string();
  auto back = this->p().unwrap(*wrapped);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_TRUE(back->locked());
}

TYPED_TEST(KeyProtectorContract, AnyFlippedBlobByteIsDataLoss) {
  this->create();
  auto wrapped = this->p().wrap(this->random_dek());
  ASSERT_TRUE(wrapped.ok()) << wrapped.status().to_string();
  for (std::size_t i = 0; i < wrapped->blob.size(); ++i) {
    WrappedKey tampered = *wrapped;
    tampered.blob[i] ^= 0x01;
    auto r = this->p().unwrap(tampered);
    ASSERT_FALSE(r.ok()) << "flipping byte " << i << " went unnoticed";
    EXPECT_EQ(r.status().code(), Code::data_loss) << "byte " << i << ": " << r.status().to_string();
  }
}

TYPED_TEST(KeyProtectorContract, TruncatedOrEmptyBlobIsDataLoss) {
  this->create();
  auto wrapped = this->p().wrap(this->random_dek());
  ASSERT_TRUE(wrapped.ok()) << wrapped.status().to_string();
  WrappedKey cut = *wrapped;
  cut.blob.resize(cut.blob.size() - 8);
  EXPECT_EQ(this->p().unwrap(cut).status().code(), Code::data_loss);
  cut.blob.clear();
  EXPECT_EQ(this->p().unwrap(cut).status().code(), Code::data_loss);
}

TYPED_TEST(KeyProtectorContract, UnknownMechanismIsInvalidArgument) {
  this->create();
  auto wrapped = this->p().wrap(this->random_dek());
  ASSERT_TRUE(wrapped.ok()) << wrapped.status().to_string();
  WrappedKey other = *wrapped;
  other.mechanism = "CKM_ROT13";
  auto r = this->p().unwrap(other);
  EXPECT_EQ(r.status().code(), Code::invalid_argument) << r.status().to_string();
}

TYPED_TEST(KeyProtectorContract, UnknownMasterKeyIdIsNotFound) {
  this->create();
  auto wrapped = this->p().wrap(this->random_dek());
  ASSERT_TRUE(wrapped.ok()) << wrapped.status().to_string();
  WrappedKey other = *wrapped;
  other.master_key_id = "coffer-mk-99";
  auto r = this->p().unwrap(other);
  EXPECT_EQ(r.status().code(), Code::not_found) << r.status().to_string();
}

TYPED_TEST(KeyProtectorContract, SelfTestPasses) {
  this->create();
  Status s = this->p().self_test();
  EXPECT_TRUE(s.ok()) << s.to_string();
}

TYPED_TEST(KeyProtectorContract, DeviceOperationsCountWrapAndUnwrap) {
  this->create();
  const std::uint64_t start = this->p().device_operations();
  auto wrapped = this->p().wrap(this->random_dek());
  ASSERT_TRUE(wrapped.ok()) << wrapped.status().to_string();
  const std::uint64_t after_wrap = this->p().device_operations();
  EXPECT_GT(after_wrap, start);
  ASSERT_TRUE(this->p().unwrap(*wrapped).ok());
  EXPECT_GT(this->p().device_operations(), after_wrap);
}

TYPED_TEST(KeyProtectorContract, OperationsBeforeTheMasterKeyExistsAreNotFound) {
  auto wrapped = this->p().wrap(this->random_dek());
  EXPECT_EQ(wrapped.status().code(), Code::not_found) << wrapped.status().to_string();

  // A well-formed wrapped key for this protector, but no MK to unwrap it with.
  const ProtectorInfo info = this->p().describe();
  WrappedKey orphan{info.mechanism, info.master_key_id, std::vector<std::uint8_t>(40, 0xA5)};
  auto r = this->p().unwrap(orphan);
  EXPECT_EQ(r.status().code(), Code::not_found) << r.status().to_string();

  EXPECT_EQ(this->p().self_test().code(), Code::not_found);
}

TYPED_TEST(KeyProtectorContract, DescribeMatchesWhatWrapRecords) {
  this->create();
  auto wrapped = this->p().wrap(this->random_dek());
  ASSERT_TRUE(wrapped.ok()) << wrapped.status().to_string();
  const ProtectorInfo info = this->p().describe();
  EXPECT_FALSE(info.kind.empty());
  EXPECT_FALSE(info.detail.empty());
  EXPECT_EQ(info.master_key_id, wrapped->master_key_id);
  EXPECT_EQ(info.mechanism, wrapped->mechanism);
}

TYPED_TEST(KeyProtectorContract, ConcurrentCallersAllSucceed) {
  this->create();
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 25; ++i) {
        auto dek = crypto::random_key(32);
        if (!dek.ok()) { ++failures; continue; }
        auto wrapped = this->p().wrap(*dek);
        if (!wrapped.ok()) { ++failures; continue; }
        auto back = this->p().unwrap(*wrapped);
        if (!back.ok() || !back->equals(*dek)) ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
}

}  // namespace
}  // namespace coffer::keys
