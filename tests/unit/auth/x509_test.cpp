// Unit tests for crypto/x509: certificate field parsing, PEM bundles, and chain verification
// (good chain, intermediates, wrong CA, expired and not-yet-valid leaves), with certificates
// generated at test time.
#include <gtest/gtest.h>

#include <ctime>

#include "crypto/encoding.h"
#include "crypto/mac.h"
#include "crypto/x509.h"
#include "tests/unit/auth/test_pki.h"

namespace coffer::crypto {
namespace {

using coffer::testing::CertSpec;
using coffer::testing::make_cert;
using coffer::testing::TestCert;

ByteView view(const TestCert& c) { return ByteView(c.der.data(), c.der.size()); }

TEST(X509Parse, ReadsTheFieldsRolesMatchOn) {
  const TestCert ca = make_cert({.cn = "Test Root CA", .ca = true, .serial = 1});
  const long before = static_cast<long>(std::time(nullptr));
  const TestCert leaf = make_cert({.cn = "web01.example.internal",
                                   .ous = {"ops", "web"},
                                   .dns = {"web01.example.internal", "web.example.internal"},
                                   .emails = {"ops@example.internal"},
                                   .uris = {"spiffe://example.internal/web"},
                                   .serial = 0x1234abcd},
                                  &ca);
  auto info = parse_certificate_der(view(leaf));
  ASSERT_TRUE(info.ok()) << info.status().to_string();
  EXPECT_EQ(info->common_name, "web01.example.internal");
  EXPECT_EQ(info->organizational_units, (std::vector<std::string>{"ops", "web"}));
  EXPECT_EQ(info->dns_sans, (std::vector<std::string>{"web01.example.internal", "web.example.internal"}));
  EXPECT_EQ(info->email_sans, (std::vector<std::string>{"ops@example.internal"}));
  EXPECT_EQ(info->uri_sans, (std::vector<std::string>{"spiffe://example.internal/web"}));
  EXPECT_EQ(info->serial_hex, "1234abcd");
  EXPECT_EQ(info->serial_decimal, "305441741");
  const Digest fp = sha256(view(leaf));
  EXPECT_EQ(info->fingerprint_sha256_hex, to_hex(ByteView(fp.data(), fp.size())));
  EXPECT_EQ(info->fingerprint_sha256_hex.size(), 64u);
  EXPECT_NEAR(static_cast<double>(info->not_before), static_cast<double>(before - 3600), 5);
  EXPECT_NEAR(static_cast<double>(info->not_after), static_cast<double>(before + 86400), 5);
  EXPECT_EQ(info->subject, "CN=web01.example.internal,OU=web,OU=ops,O=Coffer Test");
  EXPECT_FALSE(info->is_ca);
  // SKID of the leaf is its own key hash; AKID points at the CA's SKID.
  auto ca_info = parse_certificate_der(view(ca));
  ASSERT_TRUE(ca_info.ok());
  EXPECT_TRUE(ca_info->is_ca);
  EXPECT_EQ(info->authority_key_id, ca_info->subject_key_id);
  EXPECT_EQ(info->subject_key_id.size(), 20u * 3 - 1);  // 20 bytes as "aa:bb:..."
  EXPECT_NE(info->subject_key_id, ca_info->subject_key_id);
}

TEST(X509Parse, CertificateWithoutSansOrCn) {
  const TestCert c = make_cert({.cn = ""});
  auto info = parse_certificate_der(view(c));
  ASSERT_TRUE(info.ok()) << info.status().to_string();
  EXPECT_EQ(info->common_name, "");
  EXPECT_TRUE(info->dns_sans.empty());
  EXPECT_TRUE(info->organizational_units.empty());
}

TEST(X509Parse, RejectsGarbageAndTrailingBytes) {
  const std::vector<std::uint8_t> junk = {0x30, 0x03, 0x01, 0x02, 0x03};
  EXPECT_EQ(parse_certificate_der(ByteView(junk.data(), junk.size())).status().code(), Code::invalid_argument);
  EXPECT_FALSE(parse_certificate_der(ByteView()).ok());
  TestCert c = make_cert({.cn = "x"});
  ASSERT_TRUE(parse_certificate_der(view(c)).ok());  // now a parsed certificate is kept for reuse
  c.der.push_back(0);
  EXPECT_EQ(parse_certificate_der(view(c)).status().code(), Code::invalid_argument)
      << "the same certificate plus a trailing byte must not be served as the parsed one";
}

TEST(X509Pem, BundleAndErrors) {
  const TestCert a = make_cert({.cn = "a", .ca = true});
  const TestCert b = make_cert({.cn = "b", .ca = true});
  auto both = certificates_from_pem("junk before\n" + a.pem + b.pem);
  ASSERT_TRUE(both.ok()) << both.status().to_string();
  ASSERT_EQ(both->size(), 2u);
  EXPECT_EQ((*both)[0], a.der);
  EXPECT_EQ((*both)[1], b.der);
  EXPECT_FALSE(certificates_from_pem("").ok());
  EXPECT_FALSE(certificates_from_pem("not pem at all").ok());
  std::string broken = a.pem;
  broken[broken.size() / 2] = '!';
  EXPECT_FALSE(certificates_from_pem(broken).ok());
  auto anchors = TrustAnchors::from_pem(a.pem + b.pem);
  ASSERT_TRUE(anchors.ok());
  EXPECT_EQ(anchors->fingerprints().size(), 2u);
  EXPECT_FALSE(TrustAnchors::from_pem("").ok());
}

class X509Verify : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = make_cert({.cn = "Root", .ca = true, .serial = 1});
    inter_ = make_cert({.cn = "Intermediate", .ca = true, .serial = 2}, &root_);
    leaf_ = make_cert({.cn = "leaf", .serial = 3}, &inter_);
    direct_ = make_cert({.cn = "direct", .serial = 4}, &root_);
  }
  TestCert root_, inter_, leaf_, direct_;
};

TEST_F(X509Verify, AcceptsChainsToTheAnchor) {
  auto anchors = TrustAnchors::from_pem(root_.pem);
  ASSERT_TRUE(anchors.ok());
  EXPECT_TRUE(anchors->verify(view(direct_), {}).ok());
  Status with_inter = anchors->verify(view(leaf_), {inter_.der});
  EXPECT_TRUE(with_inter.ok()) << with_inter.to_string();
  // Copies share the same store.
  TrustAnchors copy = *anchors;
  EXPECT_TRUE(copy.verify(view(direct_), {}).ok());
}

TEST_F(X509Verify, MissingIntermediateOrWrongCaIsRefusedWithReason) {
  auto anchors = TrustAnchors::from_pem(root_.pem);
  ASSERT_TRUE(anchors.ok());
  Status no_inter = anchors->verify(view(leaf_), {});
  EXPECT_EQ(no_inter.code(), Code::permission_denied);
  EXPECT_EQ(no_inter.message(), "unable to get local issuer certificate");

  const TestCert other = make_cert({.cn = "Other CA", .ca = true});
  auto other_anchors = TrustAnchors::from_pem(other.pem);
  ASSERT_TRUE(other_anchors.ok());
  Status wrong = other_anchors->verify(view(direct_), {});
  EXPECT_EQ(wrong.code(), Code::permission_denied);
  EXPECT_EQ(wrong.message(), "unable to get local issuer certificate");
}

TEST_F(X509Verify, IntermediateAsAnchorIsEnough) {
  // Go (and so Vault) treat any configured certificate as a root.
  auto anchors = TrustAnchors::from_pem(inter_.pem);
  ASSERT_TRUE(anchors.ok());
  EXPECT_TRUE(anchors->verify(view(leaf_), {}).ok());
  EXPECT_FALSE(anchors->verify(view(direct_), {}).ok());
}

TEST_F(X509Verify, SelfSignedLeafAsItsOwnAnchor) {
  const TestCert self = make_cert({.cn = "self"});
  auto anchors = TrustAnchors::from_pem(self.pem);
  ASSERT_TRUE(anchors.ok());
  EXPECT_TRUE(anchors->verify(view(self), {}).ok());
}

TEST_F(X509Verify, ExpiredAndNotYetValidLeavesAreRefused) {
  // A root valid from ten days ago to ten days ahead, so only the leaves' dates matter.
  const TestCert root = make_cert({.cn = "Long Root", .ca = true, .not_before_offset = -864000,
                                   .not_after_offset = 864000, .serial = 8});
  const TestCert expired =
      make_cert({.cn = "old", .not_before_offset = -7200, .not_after_offset = -3600, .serial = 9}, &root);
  const TestCert future =
      make_cert({.cn = "new", .not_before_offset = 3600, .not_after_offset = 7200, .serial = 10}, &root);
  const TestCert current = make_cert({.cn = "now", .serial = 11}, &root);
  auto anchors = TrustAnchors::from_pem(root.pem);
  ASSERT_TRUE(anchors.ok());
  Status e = anchors->verify(view(expired), {});
  EXPECT_EQ(e.code(), Code::permission_denied);
  EXPECT_EQ(e.message(), "certificate has expired");
  Status f = anchors->verify(view(future), {});
  EXPECT_EQ(f.message(), "certificate is not yet valid");
  // verify_at moves the clock: the expired leaf was valid 90 minutes ago, the current one will
  // have expired in two days.
  const auto now = static_cast<std::int64_t>(std::time(nullptr));
  Status earlier = anchors->verify_at(view(expired), {}, now - 5400);
  EXPECT_TRUE(earlier.ok()) << earlier.to_string();
  EXPECT_EQ(anchors->verify_at(view(current), {}, now + 2 * 86400).message(), "certificate has expired");
}

// Parsed certificates are reused by the SHA-256 of their DER (crypto/x509.cpp): a certificate
// with one byte of its signature changed is another certificate, parsed and refused on its own,
// however often the genuine one verified before.
TEST_F(X509Verify, AForgedCopyOfAReusedCertificateIsStillRefused) {
  auto anchors = TrustAnchors::from_pem(root_.pem);
  ASSERT_TRUE(anchors.ok());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(anchors->verify(view(direct_), {}).ok());
  TestCert forged = direct_;
  forged.der[forged.der.size() - 5] ^= 0x01;  // inside the signature value
  auto parsed = parse_certificate_der(view(forged));
  ASSERT_TRUE(parsed.ok()) << "still well-formed DER";
  EXPECT_EQ(parsed->common_name, "direct");
  Status refused = anchors->verify(view(forged), {});
  EXPECT_EQ(refused.code(), Code::permission_denied) << refused.to_string();
  EXPECT_TRUE(anchors->verify(view(direct_), {}).ok());
}

TEST_F(X509Verify, GarbageInputsAreInvalidArgument) {
  auto anchors = TrustAnchors::from_pem(root_.pem);
  ASSERT_TRUE(anchors.ok());
  const std::vector<std::uint8_t> junk = {1, 2, 3};
  EXPECT_EQ(anchors->verify(ByteView(junk.data(), junk.size()), {}).code(), Code::invalid_argument);
  EXPECT_EQ(anchors->verify(view(leaf_), {junk}).code(), Code::invalid_argument);
}

}  // namespace
}  // namespace coffer::crypto
