// Unit tests for crypto/: SecretBytes, AES-256-GCM with AAD, HKDF, HMAC, RNG, encodings.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "crypto/aead.h"
#include "crypto/encoding.h"
#include "crypto/mac.h"
#include "crypto/random.h"
#include "crypto/secret_bytes.h"

namespace coffer::crypto {
namespace {

SecretBytes test_key(std::uint8_t fill) {
  SecretBytes k(32);
  for (std::size_t i = 0; i < 32; ++i) k.data(reveal())[i] = static_cast<std::uint8_t>(fill + i);
  return k;
}

TEST(SecretBytes, AppendGrowsAndKeepsContent) {
  SecretBytes s;
  for (int i = 0; i < 1000; ++i) s.append("ab");
  ASSERT_EQ(s.size(), 2000u);
  EXPECT_EQ(s.view(reveal()).substr(0, 4), "abab");
  EXPECT_EQ(s.view(reveal()).substr(1996), "abab");
}

TEST(SecretBytes, MoveLeavesSourceEmpty) {
  SecretBytes a = SecretBytes::copy_of(std::string_view("secret"));
  SecretBytes b = std::move(a);
  EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move): checking the moved-from state
  EXPECT_EQ(b.view(reveal()), "secret");
}

TEST(SecretBytes, ShrinkWipesTail) {
  SecretBytes s = SecretBytes::copy_of(std::string_view("abcdef"));
  const std::uint8_t* p = s.data(reveal());
  s.resize(2);
  EXPECT_EQ(s.view(reveal()), "ab");
  // The bytes past the new end are still our allocation: they must be zero now.
  EXPECT_EQ(p[2], 0);
  EXPECT_EQ(p[5], 0);
}

TEST(SecretBytes, LockedBufferIsLockedAndZeroed) {
  auto s = SecretBytes::create_locked(32);
  ASSERT_TRUE(s.ok()) << s.status().to_string();
  EXPECT_TRUE(s->locked());
  EXPECT_EQ(s->size(), 32u);
  for (std::size_t i = 0; i < 32; ++i) EXPECT_EQ(s->data(reveal())[i], 0);
  SecretBytes c = s->clone();
  EXPECT_TRUE(c.equals(*s));
}

TEST(SecretBytes, EqualsComparesContentAndLength) {
  auto a = SecretBytes::copy_of(std::string_view("abc"));
  auto b = SecretBytes::copy_of(std::string_view("abc"));
  auto c = SecretBytes::copy_of(std::string_view("abd"));
  auto d = SecretBytes::copy_of(std::string_view("ab"));
  EXPECT_TRUE(a.equals(b));
  EXPECT_FALSE(a.equals(c));
  EXPECT_FALSE(a.equals(d));
}

TEST(Aead, RoundTripWithAssociatedData) {
  const SecretBytes key = test_key(1);
  auto sealed = aead_seal(key, as_bytes("hello world"), as_bytes("secret/app/db"));
  ASSERT_TRUE(sealed.ok());
  EXPECT_EQ(sealed->size(), 11 + kAeadOverhead);
  auto opened = aead_open(key, *sealed, as_bytes("secret/app/db"));
  ASSERT_TRUE(opened.ok()) << opened.status().to_string();
  EXPECT_EQ(opened->view(reveal()), "hello world");
}

TEST(Aead, FreshNonceEachTime) {
  const SecretBytes key = test_key(1);
  auto a = aead_seal(key, as_bytes("x"), {});
  auto b = aead_seal(key, as_bytes("x"), {});
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(*a, *b);
}

TEST(Aead, EveryFlippedByteFailsClosed) {
  const SecretBytes key = test_key(1);
  auto sealed = aead_seal(key, as_bytes("attack at dawn"), as_bytes("aad"));
  ASSERT_TRUE(sealed.ok());
  for (std::size_t i = 0; i < sealed->size(); ++i) {
    auto copy = *sealed;
    copy[i] ^= 0x01;
    auto opened = aead_open(key, copy, as_bytes("aad"));
    ASSERT_FALSE(opened.ok()) << "flip at byte " << i << " was not detected";
    EXPECT_EQ(opened.status().code(), Code::data_loss);
  }
}

TEST(Aead, WrongAssociatedDataOrKeyFails) {
  const SecretBytes key = test_key(1);
  auto sealed = aead_seal(key, as_bytes("v"), as_bytes("secret/a"));
  ASSERT_TRUE(sealed.ok());
  EXPECT_FALSE(aead_open(key, *sealed, as_bytes("secret/b")).ok());
  EXPECT_FALSE(aead_open(test_key(2), *sealed, as_bytes("secret/a")).ok());
  EXPECT_FALSE(aead_open(key, ByteView(sealed->data(), 5), as_bytes("secret/a")).ok());
}

TEST(Aead, RejectsWrongKeySize) {
  SecretBytes short_key(16);
  auto sealed = aead_seal(short_key, as_bytes("v"), {});
  ASSERT_FALSE(sealed.ok());
  EXPECT_EQ(sealed.status().code(), Code::invalid_argument);
}

TEST(Mac, HmacSha256MatchesRfc4231Case2) {
  const SecretBytes key = SecretBytes::copy_of(std::string_view("Jefe"));
  auto mac = hmac_sha256(key, as_bytes("what do ya want for nothing?"));
  ASSERT_TRUE(mac.ok());
  EXPECT_EQ(to_hex(*mac), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

// Each thread keeps contexts keyed for its last few keys: alternating keys, and more keys than
// it keeps, must still give every key its own MAC (RFC 4231 cases 1 to 3).
TEST(Mac, HmacSha256AcrossManyKeysAndRepeats) {
  const SecretBytes k1 = SecretBytes::copy_of(ByteView(std::vector<std::uint8_t>(20, 0x0b)));
  const SecretBytes k2 = SecretBytes::copy_of(std::string_view("Jefe"));
  const SecretBytes k3 = SecretBytes::copy_of(ByteView(std::vector<std::uint8_t>(20, 0xaa)));
  const std::string d3(50, '\xdd');
  std::vector<SecretBytes> others;
  for (std::uint8_t i = 1; i <= 6; ++i) others.push_back(SecretBytes::copy_of(ByteView(std::vector<std::uint8_t>(32, i))));
  for (int round = 0; round < 3; ++round) {
    auto m1 = hmac_sha256(k1, as_bytes("Hi There"));
    auto m2 = hmac_sha256(k2, as_bytes("what do ya want for nothing?"));
    auto m2again = hmac_sha256(k2, as_bytes("what do ya want for nothing?"));
    auto m3 = hmac_sha256(k3, as_bytes(d3));
    ASSERT_TRUE(m1.ok() && m2.ok() && m2again.ok() && m3.ok());
    EXPECT_EQ(to_hex(*m1), "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    EXPECT_EQ(to_hex(*m2), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    EXPECT_EQ(*m2again, *m2);
    EXPECT_EQ(to_hex(*m3), "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe");
    std::set<std::string> distinct;
    for (const auto& k : others) {
      auto m = hmac_sha256(k, as_bytes("Hi There"));
      ASSERT_TRUE(m.ok());
      distinct.insert(to_hex(*m));
    }
    EXPECT_EQ(distinct.size(), others.size());
  }
  EXPECT_FALSE(hmac_sha256(SecretBytes(), as_bytes("x")).ok());
}

TEST(Mac, HkdfMatchesRfc5869Case1) {
  auto ikm = SecretBytes::copy_of(ByteView(std::vector<std::uint8_t>(22, 0x0b)));
  const auto salt = *from_hex("000102030405060708090a0b0c");
  // info = f0..f9 (not valid UTF-8 text, but any bytes are fine for HKDF)
  const auto info = *from_hex("f0f1f2f3f4f5f6f7f8f9");
  auto okm = hkdf_sha256(ikm, salt,
                         std::string_view(reinterpret_cast<const char*>(info.data()), info.size()), 42);
  ASSERT_TRUE(okm.ok()) << okm.status().to_string();
  EXPECT_EQ(to_hex(okm->bytes(reveal())),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865");
}

TEST(Mac, HkdfInfoSeparatesKeys) {
  auto root = random_key(32);
  ASSERT_TRUE(root.ok());
  auto a = hkdf_sha256(*root, {}, "coffer token-hash v1", 32);
  auto b = hkdf_sha256(*root, {}, "coffer audit-hmac v1", 32);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_FALSE(a->equals(*b));
}

TEST(Mac, Sha256KnownAnswer) {
  EXPECT_EQ(to_hex(sha256(as_bytes("abc"))),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Mac, ConstantTimeEqual) {
  EXPECT_TRUE(constant_time_equal(as_bytes("abc"), as_bytes("abc")));
  EXPECT_FALSE(constant_time_equal(as_bytes("abc"), as_bytes("abd")));
  EXPECT_FALSE(constant_time_equal(as_bytes("abc"), as_bytes("ab")));
}

TEST(Random, Base62IsUniformAlphabetAndDistinct) {
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    auto s = random_base62(24);
    ASSERT_TRUE(s.ok());
    ASSERT_EQ(s->size(), 24u);
    for (char c : s->view(reveal())) ASSERT_TRUE(std::isalnum(static_cast<unsigned char>(c)));
    seen.insert(std::string(s->view(reveal())));
  }
  EXPECT_EQ(seen.size(), 100u);
}

TEST(Random, UuidShape) {
  auto u = random_uuid();
  ASSERT_TRUE(u.ok());
  ASSERT_EQ(u->size(), 36u);
  EXPECT_EQ((*u)[14], '4');
  EXPECT_EQ((*u)[8], '-');
}

// Request ids come from a per-thread buffer: same shape, never repeated across refills.
TEST(Random, RequestIdsAreUuidsAndDistinct) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {  // ~31 refills of the 32-id buffer
    auto u = random_request_id();
    ASSERT_TRUE(u.ok());
    ASSERT_EQ(u->size(), 36u);
    for (std::size_t k : {8u, 13u, 18u, 23u}) EXPECT_EQ((*u)[k], '-') << *u;
    EXPECT_EQ((*u)[14], '4') << *u;
    EXPECT_NE(std::string("89ab").find((*u)[19]), std::string::npos) << *u;
    for (std::size_t k = 0; k < 36; ++k) {
      if (k == 8 || k == 13 || k == 18 || k == 23) continue;
      EXPECT_NE(std::string("0123456789abcdef").find((*u)[k]), std::string::npos) << *u;
    }
    seen.insert(*u);
  }
  EXPECT_EQ(seen.size(), 1000u);
}

TEST(Mac, Sha256RepeatedAndLongInputsMatchTheOneShot) {
  // The per-thread context must start clean each time: the same input hashes the same.
  std::string data;
  for (int i = 0; i < 300; ++i) data += static_cast<char>(i);
  for (int round = 0; round < 3; ++round) {
    EXPECT_EQ(to_hex(sha256(as_bytes(""))), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    EXPECT_EQ(to_hex(sha256(as_bytes("abc"))), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    EXPECT_EQ(sha256(as_bytes(data)), sha256(as_bytes(data)));
  }
}

TEST(Encoding, HexAndBase64RoundTrip) {
  const std::vector<std::uint8_t> data = {0, 1, 2, 0xfe, 0xff};
  EXPECT_EQ(to_hex(data), "000102feff");
  EXPECT_EQ(*from_hex("000102FEFF"), data);
  EXPECT_FALSE(from_hex("0g").has_value());
  EXPECT_FALSE(from_hex("abc").has_value());
  for (std::size_t n = 0; n <= data.size(); ++n) {
    std::vector<std::uint8_t> part(data.begin(), data.begin() + static_cast<long>(n));
    auto back = from_base64(to_base64(part));
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(*back, part);
  }
  EXPECT_FALSE(from_base64("abc").has_value());
}

}  // namespace
}  // namespace coffer::crypto
