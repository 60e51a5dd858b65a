// Pkcs11Protector against a real SoftHSM token (one private token store per test): what the
// contract suite cannot see — module and token selection, login errors, the MK's attributes on
// the token, persistence across processes, keys deleted or planted behind the protector's back.
#include "hsm/pkcs11_protector.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "crypto/random.h"
#include "hsm/ck_status.h"
#include "tests/support/softhsm_fixture.h"
#include "tests/unit/hsm/raw_session.h"

namespace coffer::hsm {
namespace {

using ::testing::HasSubstr;

class Pkcs11ProtectorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = coffer::testing::SoftHsmFixture::create("coffer");
    ASSERT_TRUE(store.ok()) << store.status().to_string();
    store_ = std::move(store).value();
  }

  Pkcs11Config config() const {
    Pkcs11Config c;
    c.module = "softhsm2";
    c.token_label = "coffer";
    return c;
  }

  Result<std::unique_ptr<Pkcs11Protector>> open(const Pkcs11Config& c) {
    return Pkcs11Protector::open(c, store_->pin_secret());
  }

  std::unique_ptr<Pkcs11Protector> open_ok(const Pkcs11Config& c) {
    auto p = open(c);
    EXPECT_TRUE(p.ok()) << p.status().to_string();
    return p.ok() ? std::move(p).value() : nullptr;
  }

  std::unique_ptr<Pkcs11Protector> open_with_master_key() {
    auto p = open_ok(config());
    if (p == nullptr) return nullptr;
    Status s = p->create_master_key();
    EXPECT_TRUE(s.ok()) << s.to_string();
    return p;
  }

  std::unique_ptr<testing::RawSession> raw(const std::string& label = "coffer") {
    auto r = testing::RawSession::open(coffer::testing::SoftHsmFixture::module_path(), label,
                                       store_->pin());
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    return r.ok() ? std::move(r).value() : nullptr;
  }

  static crypto::SecretBytes dek() { return crypto::random_key(32).value(); }

  std::unique_ptr<coffer::testing::SoftHsmFixture> store_;
};

template <typename T>
Status status_of(const Result<T>& r) {
  return r.status();
}

// --- opening: module, token, PIN ---------------------------------------------------------

TEST_F(Pkcs11ProtectorTest, WrongPinIsPermissionDeniedNamingTheCkr) {
  auto p = Pkcs11Protector::open(config(), crypto::SecretBytes::copy_of(std::string_view("9999")));
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), Code::permission_denied);
  EXPECT_EQ(p.status().message(),
            "PKCS#11 login to token 'coffer' failed: CKR_PIN_INCORRECT (check the PIN credential)");
}

TEST_F(Pkcs11ProtectorTest, EmptyPinIsRefusedBeforeTheToken) {
  auto p = Pkcs11Protector::open(config(), crypto::SecretBytes());
  EXPECT_EQ(p.status().code(), Code::invalid_argument) << p.status().to_string();
}

TEST_F(Pkcs11ProtectorTest, UnknownTokenLabelIsNotFoundNamingLabelModuleAndWhatIsThere) {
  Pkcs11Config c = config();
  c.token_label = "nope";
  auto p = open(c);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), Code::not_found);
  EXPECT_THAT(p.status().message(), HasSubstr("label 'nope'"));
  EXPECT_THAT(p.status().message(), HasSubstr("module 'softhsm2'"));
  EXPECT_THAT(p.status().message(), HasSubstr("'coffer'"));  // the token that is there
}

TEST_F(Pkcs11ProtectorTest, TokenSelectorMustBeExactlyOneOfLabelAndUri) {
  Pkcs11Config both = config();
  both.token_uri = "pkcs11:token=coffer";
  EXPECT_EQ(status_of(open(both)).code(), Code::invalid_argument);
  Pkcs11Config neither = config();
  neither.token_label.clear();
  EXPECT_EQ(status_of(open(neither)).code(), Code::invalid_argument);
  Pkcs11Config too_long = config();
  too_long.token_label = std::string(33, 'x');
  EXPECT_EQ(status_of(open(too_long)).code(), Code::invalid_argument);
}

TEST_F(Pkcs11ProtectorTest, UnregisteredModuleNameIsNotFound) {
  Pkcs11Config c = config();
  c.module = "no-such-module";
  auto p = open(c);
  EXPECT_EQ(p.status().code(), Code::not_found) << p.status().to_string();
  EXPECT_THAT(p.status().message(), HasSubstr("not registered"));
  EXPECT_THAT(p.status().message(), HasSubstr("softhsm2"));  // lists what is registered
}

TEST_F(Pkcs11ProtectorTest, MissingModulePathIsNotFoundAndRelativePathIsRefused) {
  Pkcs11Config c = config();
  c.module = "/nonexistent/libnothing.so";
  EXPECT_EQ(status_of(open(c)).code(), Code::not_found);
  c.module = "softhsm/libsofthsm2.so";
  EXPECT_EQ(status_of(open(c)).code(), Code::invalid_argument);
  c.module = "";
  EXPECT_EQ(status_of(open(c)).code(), Code::invalid_argument);
}

TEST_F(Pkcs11ProtectorTest, ModuleGivenByAbsolutePathWorks) {
  Pkcs11Config c = config();
  c.module = coffer::testing::SoftHsmFixture::module_path();
  auto p = open_ok(c);
  ASSERT_NE(p, nullptr);
  ASSERT_TRUE(p->create_master_key().ok());
  auto k = dek();
  auto w = p->wrap(k);
  ASSERT_TRUE(w.ok()) << w.status().to_string();
  auto back = p->unwrap(*w);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_TRUE(back->equals(k));
  EXPECT_THAT(p->describe().detail, HasSubstr("module " + c.module));
}

TEST_F(Pkcs11ProtectorTest, TokenUriSelectsTheNamedTokenAmongSeveral) {
  ASSERT_TRUE(store_->init_token("other").ok());
  Pkcs11Config by_uri = config();
  by_uri.token_label.clear();
  by_uri.token_uri = "pkcs11:token=other;manufacturer=SoftHSM%20project";
  auto p = open_ok(by_uri);
  ASSERT_NE(p, nullptr);
  EXPECT_THAT(p->describe().detail, HasSubstr("token other"));
  ASSERT_TRUE(p->create_master_key().ok());

  // The key went to "other", not to "coffer".
  auto on_coffer = open_ok(config());
  ASSERT_NE(on_coffer, nullptr);
  EXPECT_FALSE(on_coffer->has_master_key().value());
  EXPECT_TRUE(p->has_master_key().value());
  EXPECT_EQ(raw("other")->find_keys("coffer-mk-1").size(), 1u);
}

TEST_F(Pkcs11ProtectorTest, UnusableTokenUrisAreRefused) {
  Pkcs11Config c = config();
  c.token_label.clear();
  c.token_uri = "token=coffer";  // no scheme
  EXPECT_EQ(status_of(open(c)).code(), Code::invalid_argument);
  c.token_uri = "pkcs11:token=coffer?pin-value=coffer-test-pin";
  auto with_pin = open(c);
  EXPECT_EQ(with_pin.status().code(), Code::invalid_argument);
  EXPECT_THAT(with_pin.status().message(), ::testing::Not(HasSubstr("coffer-test-pin")));
  c.token_uri = "pkcs11:token=coffer;object=coffer-mk-1";
  EXPECT_EQ(status_of(open(c)).code(), Code::invalid_argument);
  c.token_uri = "pkcs11:token=coffer?module-name=softhsm2";
  EXPECT_EQ(status_of(open(c)).code(), Code::invalid_argument);
  c.token_uri = "pkcs11:token=absent";
  EXPECT_EQ(status_of(open(c)).code(), Code::not_found);
}

TEST_F(Pkcs11ProtectorTest, TwoTokensWithTheSameLabelAreAmbiguous) {
  ASSERT_TRUE(store_->init_token("coffer").ok());
  auto p = open(config());
  EXPECT_EQ(p.status().code(), Code::failed_precondition) << p.status().to_string();
  EXPECT_THAT(p.status().message(), HasSubstr("serial"));
}

TEST_F(Pkcs11ProtectorTest, DescribeNamesKindKeyMechanismModuleAndToken) {
  auto p = open_ok(config());
  ASSERT_NE(p, nullptr);
  const keys::ProtectorInfo info = p->describe();
  EXPECT_EQ(info.kind, "pkcs11");
  EXPECT_EQ(info.master_key_id, "coffer-mk-1");
  EXPECT_EQ(info.mechanism, "CKM_AES_KEY_WRAP_PAD");  // SoftHSM offers the preferred one
  EXPECT_EQ(info.detail, "module softhsm2, token coffer (SoftHSM project SoftHSM v2)");
}

// --- the master key on the token -----------------------------------------------------------

TEST_F(Pkcs11ProtectorTest, MasterKeyHasTheProtectiveAttributes) {
  auto p = open_with_master_key();
  ASSERT_NE(p, nullptr);
  auto r = raw();
  ASSERT_NE(r, nullptr);
  auto keys = r->find_keys("coffer-mk-1");
  ASSERT_EQ(keys.size(), 1u);
  const CK_OBJECT_HANDLE mk = keys[0];
  EXPECT_TRUE(r->get_bool(mk, CKA_TOKEN).value());
  EXPECT_TRUE(r->get_bool(mk, CKA_PRIVATE).value());
  EXPECT_TRUE(r->get_bool(mk, CKA_SENSITIVE).value());
  EXPECT_FALSE(r->get_bool(mk, CKA_EXTRACTABLE).value());
  EXPECT_TRUE(r->get_bool(mk, CKA_ALWAYS_SENSITIVE).value());
  EXPECT_TRUE(r->get_bool(mk, CKA_NEVER_EXTRACTABLE).value());
  EXPECT_TRUE(r->get_bool(mk, CKA_LOCAL).value()) << "not generated inside the token";
  EXPECT_TRUE(r->get_bool(mk, CKA_WRAP).value());
  EXPECT_TRUE(r->get_bool(mk, CKA_UNWRAP).value());
  EXPECT_FALSE(r->get_bool(mk, CKA_ENCRYPT).value());
  EXPECT_FALSE(r->get_bool(mk, CKA_DECRYPT).value());
  EXPECT_EQ(r->get_ulong(mk, CKA_KEY_TYPE).value(), CKK_AES);
  EXPECT_EQ(r->get_ulong(mk, CKA_VALUE_LEN).value(), 32u);
}

TEST_F(Pkcs11ProtectorTest, MasterKeyValueCannotBeReadNorWrappedOut) {
  auto p = open_with_master_key();
  ASSERT_NE(p, nullptr);
  auto r = raw();
  ASSERT_NE(r, nullptr);
  auto keys = r->find_keys("coffer-mk-1");
  ASSERT_EQ(keys.size(), 1u);
  const CK_OBJECT_HANDLE mk = keys[0];

  std::uint8_t value[64];
  CK_ATTRIBUTE a{CKA_VALUE, value, sizeof value};
  EXPECT_EQ(ckr_name(r->fn()->C_GetAttributeValue(r->session(), mk, &a, 1)),
            "CKR_ATTRIBUTE_SENSITIVE");

  // Wrapped by itself, and by a wrapping key the attacker controls: both refused.
  CK_MECHANISM mech{CKM_AES_KEY_WRAP_PAD, nullptr, 0};
  std::uint8_t out[128];
  CK_ULONG out_len = sizeof out;
  EXPECT_EQ(ckr_name(r->fn()->C_WrapKey(r->session(), &mech, mk, mk, out, &out_len)),
            "CKR_KEY_UNEXTRACTABLE");
  auto kek = r->generate_aes("attacker-kek", /*token=*/false, /*sensitive=*/false,
                             /*extractable=*/true);
  ASSERT_TRUE(kek.ok()) << kek.status().to_string();
  out_len = sizeof out;
  EXPECT_EQ(ckr_name(r->fn()->C_WrapKey(r->session(), &mech, *kek, mk, out, &out_len)),
            "CKR_KEY_UNEXTRACTABLE");
}

TEST_F(Pkcs11ProtectorTest, NoSessionObjectIsLeftBehind) {
  auto p = open_with_master_key();
  ASSERT_NE(p, nullptr);
  auto w = p->wrap(dek());
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE(p->unwrap(*w).ok());
  keys::WrappedKey bad = *w;
  bad.blob[3] ^= 0xff;
  ASSERT_FALSE(p->unwrap(bad).ok());
  ASSERT_TRUE(p->self_test().ok());

  // Every object on the token now: only the MK may remain (DEKs were session objects).
  auto r = raw();
  ASSERT_NE(r, nullptr);
  ASSERT_EQ(r->fn()->C_FindObjectsInit(r->session(), nullptr, 0), CKR_OK);
  CK_OBJECT_HANDLE h[8];
  CK_ULONG n = 0;
  ASSERT_EQ(r->fn()->C_FindObjects(r->session(), h, 8, &n), CKR_OK);
  (void)r->fn()->C_FindObjectsFinal(r->session());
  EXPECT_EQ(n, 1u);
}

TEST_F(Pkcs11ProtectorTest, SelfTestRefusesAnExtractableMasterKey) {
  auto p = open_ok(config());
  ASSERT_NE(p, nullptr);
  // Planted by someone else: sensitive (CKA_VALUE is refused) but extractable.
  ASSERT_TRUE(raw()->generate_aes("coffer-mk-1", true, /*sensitive=*/true, /*extractable=*/true)
                  .ok());
  Status s = p->self_test();
  EXPECT_EQ(s.code(), Code::failed_precondition) << s.to_string();
  EXPECT_THAT(s.message(), HasSubstr("extractable"));
}

TEST_F(Pkcs11ProtectorTest, SelfTestRefusesAReadableMasterKey) {
  auto p = open_ok(config());
  ASSERT_NE(p, nullptr);
  ASSERT_TRUE(raw()->generate_aes("coffer-mk-1", true, /*sensitive=*/false, /*extractable=*/true)
                  .ok());
  Status s = p->self_test();
  EXPECT_EQ(s.code(), Code::failed_precondition) << s.to_string();
  EXPECT_THAT(s.message(), HasSubstr("readable"));
}

TEST_F(Pkcs11ProtectorTest, TwoKeysWithTheMasterKeyLabelAreRefused) {
  auto p = open_with_master_key();
  ASSERT_NE(p, nullptr);
  ASSERT_TRUE(raw()->generate_aes("coffer-mk-1", true, true, false).ok());
  EXPECT_EQ(status_of(p->has_master_key()).code(), Code::failed_precondition);
  EXPECT_EQ(status_of(p->wrap(dek())).code(), Code::failed_precondition);
}

// --- persistence, deletion, other master keys ------------------------------------------------

TEST_F(Pkcs11ProtectorTest, MasterKeySurvivesReopenAndUnwrapsOldBlobs) {
  auto k = dek();
  keys::WrappedKey w;
  {
    auto first = open_with_master_key();
    ASSERT_NE(first, nullptr);
    auto wrapped = first->wrap(k);
    ASSERT_TRUE(wrapped.ok()) << wrapped.status().to_string();
    w = *wrapped;
  }  // closed, logged out, module finalised
  auto second = open_ok(config());
  ASSERT_NE(second, nullptr);
  EXPECT_TRUE(second->has_master_key().value());
  auto back = second->unwrap(w);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_TRUE(back->equals(k));
}

TEST_F(Pkcs11ProtectorTest, BlobWrappedByAnotherProcessUnwrapsHere) {
  // The child creates the MK and wraps a known key, then exits; only the token store links
  // the two processes.
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::close(fds[0]);
    auto p = Pkcs11Protector::open(config(), store_->pin_secret());
    if (!p.ok() || !(*p)->create_master_key().ok()) ::_exit(2);
    auto w = (*p)->wrap(crypto::SecretBytes::copy_of(std::string_view("0123456789abcdef0123456789abcdef")));
    if (!w.ok()) ::_exit(3);
    if (::write(fds[1], w->blob.data(), w->blob.size()) != static_cast<ssize_t>(w->blob.size())) {
      ::_exit(4);
    }
    p->reset();
    ::_exit(0);
  }
  ::close(fds[1]);
  std::vector<std::uint8_t> blob(256);
  const ssize_t n = ::read(fds[0], blob.data(), blob.size());
  ::close(fds[0]);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
  ASSERT_GT(n, 0);
  blob.resize(static_cast<std::size_t>(n));

  auto p = open_ok(config());
  ASSERT_NE(p, nullptr);
  auto back = p->unwrap(keys::WrappedKey{"CKM_AES_KEY_WRAP_PAD", "coffer-mk-1", blob});
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(back->view(crypto::reveal()), "0123456789abcdef0123456789abcdef");
}

TEST_F(Pkcs11ProtectorTest, ClosingOneProtectorLeavesAnotherOnTheTokenLoggedIn) {
  auto a = open_with_master_key();
  ASSERT_NE(a, nullptr);
  auto b = open_ok(config());
  ASSERT_NE(b, nullptr);
  b.reset();
  auto w = a->wrap(dek());
  EXPECT_TRUE(w.ok()) << w.status().to_string();
}

TEST_F(Pkcs11ProtectorTest, KeyDeletedFromTheTokenIsNotFound) {
  auto p = open_with_master_key();
  ASSERT_NE(p, nullptr);
  auto w = p->wrap(dek());
  ASSERT_TRUE(w.ok());
  // Deleted by another process, as an operator with pkcs11-tool would.
  Status del = store_->delete_secret_key("coffer-mk-1");
  ASSERT_TRUE(del.ok()) << del.to_string();

  auto has = p->has_master_key();
  ASSERT_TRUE(has.ok()) << has.status().to_string();
  EXPECT_FALSE(*has);
  auto back = p->unwrap(*w);
  ASSERT_FALSE(back.ok());
  EXPECT_EQ(back.status().code(), Code::not_found);
  EXPECT_EQ(back.status().message(),
            "master key 'coffer-mk-1' not found on token 'coffer' (run cofferctl init, or restore "
            "the token)");
  EXPECT_EQ(status_of(p->wrap(dek())).code(), Code::not_found);

  // A new MK under the same label is a different key: the old blob is now data_loss.
  ASSERT_TRUE(p->create_master_key().ok());
  EXPECT_EQ(status_of(p->unwrap(*w)).code(), Code::data_loss);
}

TEST_F(Pkcs11ProtectorTest, BlobFromAnotherTokensMasterKeyIsDataLoss) {
  ASSERT_TRUE(store_->init_token("other").ok());
  auto p = open_with_master_key();
  ASSERT_NE(p, nullptr);
  Pkcs11Config other = config();
  other.token_label = "other";
  auto q = open_ok(other);
  ASSERT_NE(q, nullptr);
  ASSERT_TRUE(q->create_master_key().ok());
  auto w = q->wrap(dek());  // same label, different key
  ASSERT_TRUE(w.ok());
  auto r = p->unwrap(*w);
  EXPECT_EQ(r.status().code(), Code::data_loss) << r.status().to_string();
  EXPECT_THAT(r.status().message(), HasSubstr("CKR_"));
}

TEST_F(Pkcs11ProtectorTest, UnwrapsBlobsRecordedWithPlainAesKeyWrap) {
  // A blob from a token that lacked CKM_AES_KEY_WRAP_PAD: wrapped by the MK with RFC 3394.
  auto p = open_with_master_key();
  ASSERT_NE(p, nullptr);
  auto r = raw();
  ASSERT_NE(r, nullptr);
  const CK_OBJECT_HANDLE mk = r->find_keys("coffer-mk-1").at(0);
  auto plain = r->generate_aes("dek", /*token=*/false, /*sensitive=*/false, /*extractable=*/true);
  ASSERT_TRUE(plain.ok()) << plain.status().to_string();
  std::uint8_t value[32];
  CK_ATTRIBUTE a{CKA_VALUE, value, sizeof value};
  ASSERT_EQ(r->fn()->C_GetAttributeValue(r->session(), *plain, &a, 1), CKR_OK);
  CK_MECHANISM mech{CKM_AES_KEY_WRAP, nullptr, 0};
  std::vector<std::uint8_t> blob(64);
  CK_ULONG len = blob.size();
  ASSERT_EQ(r->fn()->C_WrapKey(r->session(), &mech, mk, *plain, blob.data(), &len), CKR_OK);
  blob.resize(len);
  EXPECT_EQ(len, 40u);

  auto back = p->unwrap(keys::WrappedKey{"CKM_AES_KEY_WRAP", "coffer-mk-1", blob});
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_TRUE(back->equals(crypto::ByteView(value, sizeof value)));
  // The same bytes claimed as the padded variant do not unwrap.
  EXPECT_EQ(status_of(p->unwrap(keys::WrappedKey{"CKM_AES_KEY_WRAP_PAD", "coffer-mk-1", blob}))
                .code(),
            Code::data_loss);
}

TEST_F(Pkcs11ProtectorTest, WrapsAesSizedKeysOnly) {
  auto p = open_with_master_key();
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(status_of(p->wrap(crypto::SecretBytes(31))).code(), Code::invalid_argument);
  EXPECT_EQ(status_of(p->wrap(crypto::SecretBytes())).code(), Code::invalid_argument);
  auto w = p->wrap(crypto::random_key(16).value());
  ASSERT_TRUE(w.ok()) << w.status().to_string();
  EXPECT_EQ(p->wrap(dek()).value().blob.size(), 40u);  // RFC 5649: 32 + 8
}

TEST_F(Pkcs11ProtectorTest, CreateRefusesWhenAKeyWithTheLabelExists) {
  auto p = open_ok(config());
  ASSERT_NE(p, nullptr);
  ASSERT_TRUE(raw()->generate_aes("coffer-mk-1", true, true, false).ok());
  Status s = p->create_master_key();
  EXPECT_EQ(s.code(), Code::already_exists) << s.to_string();
  EXPECT_EQ(raw()->find_keys("coffer-mk-1").size(), 1u);
}

// --- CK_RV translation ---------------------------------------------------------------------

TEST(CkStatus, NamesAndCodes) {
  EXPECT_EQ(ckr_name(CKR_PIN_INCORRECT), "CKR_PIN_INCORRECT");
  EXPECT_EQ(ckr_name(CKR_UNWRAPPING_KEY_HANDLE_INVALID), "CKR_UNWRAPPING_KEY_HANDLE_INVALID");
  EXPECT_EQ(ckr_name(0x1234), "CKR_0x1234");
  EXPECT_EQ(ckr_name(CKR_VENDOR_DEFINED | 0x42), "CKR_VENDOR_DEFINED+0x42");
  EXPECT_EQ(ckr_code(CKR_PIN_INCORRECT), Code::permission_denied);
  EXPECT_EQ(ckr_code(CKR_DEVICE_REMOVED), Code::unavailable);
  EXPECT_EQ(ckr_code(CKR_SESSION_HANDLE_INVALID), Code::unavailable);
  EXPECT_EQ(ckr_code(CKR_HOST_MEMORY), Code::resource_exhausted);
  EXPECT_EQ(ckr_code(CKR_GENERAL_ERROR), Code::internal);
  const Status s = ck_error(CKR_DEVICE_ERROR, "PKCS#11 C_WrapKey failed");
  EXPECT_EQ(s.code(), Code::unavailable);
  EXPECT_EQ(s.message(), "PKCS#11 C_WrapKey failed: CKR_DEVICE_ERROR");
  EXPECT_TRUE(ck_error(CKR_OK, "x").ok());
}

}  // namespace
}  // namespace coffer::hsm
