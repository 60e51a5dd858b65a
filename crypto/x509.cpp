// X.509 parsing and chain verification with OpenSSL 3 (see x509.h). Every OpenSSL object is
// owned by a unique_ptr with its free function, and the OpenSSL error queue is cleared at this
// boundary so a failure here never leaks into an unrelated later call.
#include "crypto/x509.h"

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cctype>
#include <ctime>
#include <limits>
#include <mutex>
#include <unordered_map>

#include "crypto/encoding.h"
#include "crypto/mac.h"

namespace coffer::crypto {
namespace {

template <typename T, void (*F)(T*)>
struct Deleter {
  void operator()(T* p) const { F(p); }
};
using X509Ptr = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;
using BnPtr = std::unique_ptr<BIGNUM, Deleter<BIGNUM, BN_free>>;
using StoreCtxPtr = std::unique_ptr<X509_STORE_CTX, Deleter<X509_STORE_CTX, X509_STORE_CTX_free>>;
using GeneralNamesPtr = std::unique_ptr<GENERAL_NAMES, Deleter<GENERAL_NAMES, GENERAL_NAMES_free>>;

struct StackDeleter {
  void operator()(STACK_OF(X509)* s) const { sk_X509_pop_free(s, X509_free); }
};
using X509StackPtr = std::unique_ptr<STACK_OF(X509), StackDeleter>;

struct OpenSslString {
  void operator()(char* p) const { OPENSSL_free(p); }
};

// Parsed certificates, kept by the SHA-256 of their DER. OpenSSL 3.0 (Debian 12) decodes a
// certificate's public key through its decoder framework on every d2i_X509: ~120 µs for a P-256
// leaf, most of it lock traffic (bench: BM_CertParse). A cert login parsed the presented
// certificate twice, and each later login of the same unit parsed it again. An X509 is
// reference-counted and OpenSSL guards the fields it caches lazily with the object's own lock,
// so one parsed object can serve concurrent logins. Bounded: emptied when full.
class ParsedCertificates {
 public:
  X509Ptr find(const Digest& key) {
    std::lock_guard lock(mu_);
    auto it = entries_.find(key);
    if (it == entries_.end() || X509_up_ref(it->second.get()) != 1) return nullptr;
    return X509Ptr(it->second.get());
  }
  void put(const Digest& key, X509* x) {
    std::lock_guard lock(mu_);
    if (entries_.size() >= kCapacity) entries_.clear();
    if (entries_.count(key) != 0 || X509_up_ref(x) != 1) return;
    entries_.emplace(key, X509Ptr(x));
  }

 private:
  static constexpr std::size_t kCapacity = 512;
  std::mutex mu_;
  std::unordered_map<Digest, X509Ptr, DigestHash> entries_;
};

ParsedCertificates& parsed_certificates() {
  // Never destroyed: freeing X509s after OpenSSL's own atexit cleanup would touch freed state.
  static ParsedCertificates* cache = new ParsedCertificates();
  return *cache;
}

X509Ptr parse_der(ByteView der) {
  if (der.empty() || der.size() > static_cast<std::size_t>(std::numeric_limits<long>::max())) {
    return nullptr;
  }
  const Digest key = sha256(der);
  if (X509Ptr hit = parsed_certificates().find(key)) return hit;
  const unsigned char* p = der.data();
  X509Ptr x(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
  if (!x || p != der.data() + der.size()) {
    ERR_clear_error();
    return nullptr;
  }
  parsed_certificates().put(key, x.get());
  return x;
}

std::string asn1_utf8(const ASN1_STRING* s) {
  unsigned char* out = nullptr;
  const int n = ASN1_STRING_to_UTF8(&out, s);
  if (n < 0) {
    ERR_clear_error();
    return {};
  }
  std::string r(reinterpret_cast<const char*>(out), static_cast<std::size_t>(n));
  OPENSSL_free(out);
  return r;
}

std::string colon_hex(const ASN1_OCTET_STRING* s) {
  if (s == nullptr) return {};
  static constexpr char kHex[] = "0123456789abcdef";
  const unsigned char* d = ASN1_STRING_get0_data(s);
  std::string out;
  for (int i = 0; i < ASN1_STRING_length(s); ++i) {
    if (i) out += ':';
    out += kHex[d[i] >> 4];
    out += kHex[d[i] & 0x0f];
  }
  return out;
}

bool to_unix(const ASN1_TIME* t, std::int64_t* out) {
  std::tm tm{};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return false;
  *out = static_cast<std::int64_t>(timegm(&tm));
  return true;
}

std::string name_rfc2253(const X509_NAME* name) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio) return {};
  // RFC 2253 order and escaping, but UTF-8 kept as UTF-8 rather than \XX escapes.
  if (X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) < 0) {
    ERR_clear_error();
    return {};
  }
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  return len > 0 ? std::string(data, static_cast<std::size_t>(len)) : std::string();
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

}  // namespace

Result<CertificateInfo> parse_certificate_der(ByteView der) {
  X509Ptr x = parse_der(der);
  if (!x) return Error(Code::invalid_argument, "not a DER-encoded X.509 certificate");

  CertificateInfo info;
  const X509_NAME* subject = X509_get_subject_name(x.get());
  for (int i = 0; i < X509_NAME_entry_count(subject); ++i) {
    const X509_NAME_ENTRY* e = X509_NAME_get_entry(subject, i);
    const int nid = OBJ_obj2nid(X509_NAME_ENTRY_get_object(e));
    // Go keeps the last CN it sees, and Vault matches on Go's value: do the same.
    if (nid == NID_commonName) info.common_name = asn1_utf8(X509_NAME_ENTRY_get_data(e));
    if (nid == NID_organizationalUnitName) {
      info.organizational_units.push_back(asn1_utf8(X509_NAME_ENTRY_get_data(e)));
    }
  }
  info.subject = name_rfc2253(subject);

  GeneralNamesPtr sans(static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(x.get(), NID_subject_alt_name, nullptr, nullptr)));
  if (sans) {
    for (int i = 0; i < sk_GENERAL_NAME_num(sans.get()); ++i) {
      const GENERAL_NAME* gn = sk_GENERAL_NAME_value(sans.get(), i);
      switch (gn->type) {
        // Through ASN1_STRING_to_UTF8, so a stray high byte becomes valid UTF-8 (these values end
        // up in JSON metadata and logs).
        case GEN_DNS: info.dns_sans.push_back(asn1_utf8(gn->d.dNSName)); break;
        case GEN_EMAIL: info.email_sans.push_back(asn1_utf8(gn->d.rfc822Name)); break;
        case GEN_URI: info.uri_sans.push_back(asn1_utf8(gn->d.uniformResourceIdentifier)); break;
        default: break;
      }
    }
  }
  ERR_clear_error();  // X509_get_ext_d2i leaves an error when the extension is absent

  BnPtr serial(ASN1_INTEGER_to_BN(X509_get0_serialNumber(x.get()), nullptr));
  if (!serial) {
    ERR_clear_error();
    return Error(Code::invalid_argument, "certificate serial number is unreadable");
  }
  std::unique_ptr<char, OpenSslString> hex(BN_bn2hex(serial.get()));
  std::unique_ptr<char, OpenSslString> dec(BN_bn2dec(serial.get()));
  if (!hex || !dec) return Error(Code::internal, "OpenSSL could not format the serial number");
  info.serial_hex = lower(hex.get());
  info.serial_decimal = dec.get();

  info.subject_key_id = colon_hex(X509_get0_subject_key_id(x.get()));
  info.authority_key_id = colon_hex(X509_get0_authority_key_id(x.get()));
  info.is_ca = (X509_get_extension_flags(x.get()) & EXFLAG_CA) != 0;

  if (!to_unix(X509_get0_notBefore(x.get()), &info.not_before) ||
      !to_unix(X509_get0_notAfter(x.get()), &info.not_after)) {
    ERR_clear_error();
    return Error(Code::invalid_argument, "certificate validity dates are unreadable");
  }
  const Digest fp = sha256(der);
  info.fingerprint_sha256_hex = to_hex(ByteView(fp.data(), fp.size()));
  ERR_clear_error();
  return info;
}

Result<std::vector<std::vector<std::uint8_t>>> certificates_from_pem(std::string_view pem) {
  if (pem.size() > static_cast<std::size_t>(std::numeric_limits<int>::max())) {
    return Error(Code::invalid_argument, "PEM bundle too large");
  }
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return Error(Code::internal, "OpenSSL could not allocate a BIO");
  std::vector<std::vector<std::uint8_t>> out;
  while (true) {
    X509Ptr x(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!x) {
      const unsigned long err = ERR_peek_last_error();
      ERR_clear_error();
      // Running out of PEM blocks after at least one certificate is the normal end.
      if (!out.empty() && ERR_GET_LIB(err) == ERR_LIB_PEM && ERR_GET_REASON(err) == PEM_R_NO_START_LINE) {
        break;
      }
      if (out.empty()) return Error(Code::invalid_argument, "no PEM certificate found");
      return Error(Code::invalid_argument,
                   "malformed PEM certificate after certificate " + std::to_string(out.size()));
    }
    unsigned char* der = nullptr;
    const int len = i2d_X509(x.get(), &der);
    if (len <= 0) {
      ERR_clear_error();
      return Error(Code::internal, "OpenSSL could not encode a certificate");
    }
    out.emplace_back(der, der + len);
    OPENSSL_free(der);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// TrustAnchors

struct TrustAnchors::Impl {
  X509_STORE* store = nullptr;
  std::vector<std::string> fingerprints;
  ~Impl() { X509_STORE_free(store); }
};

Result<TrustAnchors> TrustAnchors::from_pem(std::string_view pem) {
  COFFER_ASSIGN_OR_RETURN(auto ders, certificates_from_pem(pem));
  auto impl = std::make_shared<Impl>();
  impl->store = X509_STORE_new();
  if (impl->store == nullptr) return Error(Code::internal, "OpenSSL could not allocate an X509_STORE");
  for (const auto& der : ders) {
    X509Ptr x = parse_der(der);
    if (!x) return Error(Code::invalid_argument, "unparseable certificate in PEM bundle");
    // X509_STORE_add_cert takes its own reference. A duplicate is not an error in OpenSSL 3.
    if (X509_STORE_add_cert(impl->store, x.get()) != 1) {
      ERR_clear_error();
      return Error(Code::internal, "OpenSSL could not add a trusted certificate");
    }
    const Digest fp = sha256(der);
    impl->fingerprints.push_back(to_hex(ByteView(fp.data(), fp.size())));
  }
  // Any configured certificate is an anchor, not only self-signed roots (Go's semantics).
  if (X509_STORE_set_flags(impl->store, X509_V_FLAG_PARTIAL_CHAIN) != 1) {
    ERR_clear_error();
    return Error(Code::internal, "OpenSSL could not set verification flags");
  }
  return TrustAnchors(std::move(impl));
}

const std::vector<std::string>& TrustAnchors::fingerprints() const { return impl_->fingerprints; }

Status TrustAnchors::verify(ByteView leaf_der,
                            const std::vector<std::vector<std::uint8_t>>& intermediates_der) const {
  return verify_impl(leaf_der, intermediates_der, nullptr);
}

Status TrustAnchors::verify_at(ByteView leaf_der,
                               const std::vector<std::vector<std::uint8_t>>& intermediates_der,
                               std::int64_t at_unix_seconds) const {
  return verify_impl(leaf_der, intermediates_der, &at_unix_seconds);
}

Status TrustAnchors::verify_impl(ByteView leaf_der,
                                 const std::vector<std::vector<std::uint8_t>>& intermediates_der,
                                 const std::int64_t* at) const {
  X509Ptr leaf = parse_der(leaf_der);
  if (!leaf) return Error(Code::invalid_argument, "the client certificate is not valid DER");
  X509StackPtr untrusted(sk_X509_new_null());
  if (!untrusted) return Error(Code::internal, "OpenSSL could not allocate a certificate stack");
  for (const auto& der : intermediates_der) {
    X509Ptr x = parse_der(der);
    if (!x) return Error(Code::invalid_argument, "an intermediate certificate is not valid DER");
    if (sk_X509_push(untrusted.get(), x.get()) <= 0) {
      ERR_clear_error();
      return Error(Code::internal, "OpenSSL could not build the chain");
    }
    x.release();  // now owned by the stack
  }
  StoreCtxPtr ctx(X509_STORE_CTX_new());
  if (!ctx || X509_STORE_CTX_init(ctx.get(), impl_->store, leaf.get(), untrusted.get()) != 1) {
    ERR_clear_error();
    return Error(Code::internal, "OpenSSL could not start chain verification");
  }
  if (at != nullptr) X509_STORE_CTX_set_time(ctx.get(), 0, static_cast<time_t>(*at));
  const int rc = X509_verify_cert(ctx.get());
  const int err = X509_STORE_CTX_get_error(ctx.get());
  ERR_clear_error();
  if (rc == 1) return Status::Ok();
  if (rc < 0) return Error(Code::internal, "OpenSSL chain verification failed internally");
  return Error(Code::permission_denied, X509_verify_cert_error_string(err));
}

}  // namespace coffer::crypto
