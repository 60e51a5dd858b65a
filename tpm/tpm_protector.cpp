// TpmProtector: the master key as a PCR-bound RSA key inside the TPM (see tpm_protector.h).
//
// Every operation: connect (EsysContext), recreate the storage root key (SRK) as a primary from
// the fixed TCG template (deterministic: same seed, same key), load the MK from the key-blob
// file under it, run the command in a salted session, and flush everything on every path.
#include "tpm/tpm_protector.h"

#include <tss2/tss2_mu.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <set>

#include "crypto/encoding.h"
#include "crypto/mac.h"
#include "crypto/random.h"
#include "tpm/esys.h"
#include "tpm/key_blob.h"

namespace coffer::tpm {
namespace {

constexpr const char* kMechanism = "TPM2_RSA_OAEP_SHA256";
constexpr char kOaepLabel[] = "coffer-dek-v1";  // with its terminating zero, as the TPM wants
constexpr std::size_t kRsaBytes = 256;           // RSA-2048 ciphertext
constexpr std::size_t kMaxAuthBytes = 32;        // the MK's nameAlg (SHA-256) digest size
constexpr std::uint32_t kMaxPcr = 23;

bool is_aes_key_size(std::size_t n) { return n == 16 || n == 24 || n == 32; }

TPML_PCR_SELECTION selection(const std::vector<std::uint32_t>& pcrs) {
  TPML_PCR_SELECTION sel{};
  sel.count = 1;
  sel.pcrSelections[0].hash = TPM2_ALG_SHA256;
  sel.pcrSelections[0].sizeofSelect = 3;
  for (std::uint32_t p : pcrs) {
    sel.pcrSelections[0].pcrSelect[p / 8] |= static_cast<std::uint8_t>(1u << (p % 8));
  }
  return sel;
}

// The TCG "storage root key" template (ECC P-256, AES-128-CFB, restricted decrypt, noDA).
TPM2B_PUBLIC srk_template() {
  TPM2B_PUBLIC t{};
  TPMT_PUBLIC& a = t.publicArea;
  a.type = TPM2_ALG_ECC;
  a.nameAlg = TPM2_ALG_SHA256;
  a.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                       TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH |
                       TPMA_OBJECT_NODA | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT;
  a.parameters.eccDetail.symmetric.algorithm = TPM2_ALG_AES;
  a.parameters.eccDetail.symmetric.keyBits.aes = 128;
  a.parameters.eccDetail.symmetric.mode.aes = TPM2_ALG_CFB;
  a.parameters.eccDetail.scheme.scheme = TPM2_ALG_NULL;
  a.parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
  a.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
  return t;
}

// The MK: RSA-2048 decryption key, OAEP/SHA-256, usable only through its policy.
TPM2B_PUBLIC mk_template(const TPM2B_DIGEST& policy, bool auth_value) {
  TPM2B_PUBLIC t{};
  TPMT_PUBLIC& a = t.publicArea;
  a.type = TPM2_ALG_RSA;
  a.nameAlg = TPM2_ALG_SHA256;
  a.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                       TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_ADMINWITHPOLICY |
                       TPMA_OBJECT_DECRYPT;
  // Without an auth value there is nothing to guess, so nothing for dictionary-attack logic.
  if (!auth_value) a.objectAttributes |= TPMA_OBJECT_NODA;
  a.authPolicy = policy;
  a.parameters.rsaDetail.symmetric.algorithm = TPM2_ALG_NULL;
  a.parameters.rsaDetail.scheme.scheme = TPM2_ALG_OAEP;
  a.parameters.rsaDetail.scheme.details.oaep.hashAlg = TPM2_ALG_SHA256;
  a.parameters.rsaDetail.keyBits = 2048;
  a.parameters.rsaDetail.exponent = 0;
  return t;
}

TPM2B_DATA oaep_label() {
  TPM2B_DATA l{};
  l.size = sizeof kOaepLabel;
  std::memcpy(l.buffer, kOaepLabel, sizeof kOaepLabel);
  return l;
}

TPMT_RSA_DECRYPT oaep_scheme() {
  TPMT_RSA_DECRYPT s{};
  s.scheme = TPM2_ALG_OAEP;
  s.details.oaep.hashAlg = TPM2_ALG_SHA256;
  return s;
}

// One operation's connection plus the device-operation counter it bumps.
struct Op {
  std::unique_ptr<EsysContext> conn;
  std::atomic<std::uint64_t>& ops;
  ESYS_CONTEXT* ctx() const { return conn->get(); }
  void count() { ++ops; }
};

Result<std::string> object_name(Op& op, ESYS_TR object) {
  TPM2B_NAME* raw = nullptr;
  const TSS2_RC rc = Esys_TR_GetName(op.ctx(), object, &raw);
  EsysPtr<TPM2B_NAME> name(raw);
  if (rc != TSS2_RC_SUCCESS) return tss_error(rc, "Esys_TR_GetName");
  return crypto::to_hex(crypto::ByteView(name->name, name->size));
}

Result<TransientHandle> create_srk(Op& op) {
  TPM2B_SENSITIVE_CREATE sens{};
  TPM2B_PUBLIC tmpl = srk_template();
  TPM2B_DATA outside{};
  TPML_PCR_SELECTION none{};
  ESYS_TR h = ESYS_TR_NONE;
  op.count();
  TSS2_RC rc = Esys_CreatePrimary(op.ctx(), ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                                  ESYS_TR_NONE, &sens, &tmpl, &outside, &none, &h, nullptr,
                                  nullptr, nullptr, nullptr);
  if (rc != TSS2_RC_SUCCESS) {
    return tss_error(rc, "TPM2_CreatePrimary (storage root key under the owner hierarchy)");
  }
  return TransientHandle(op.ctx(), h);
}

// The SRK, checked against the name recorded at init: sessions are salted to it, so a different
// key here (owner hierarchy cleared, or something between coffer and the TPM answering in its
// place) must stop us before any DEK is encrypted to it.
Result<TransientHandle> pinned_srk(Op& op, const KeyBlob& blob) {
  COFFER_ASSIGN_OR_RETURN(auto srk, create_srk(op));
  COFFER_ASSIGN_OR_RETURN(auto name, object_name(op, srk.get()));
  if (name != blob.srk_name_hex) {
    return Error(Code::failed_precondition,
                 "the TPM's storage root key is not the one master key '" + blob.key_id +
                     "' was created under (the owner hierarchy was cleared, this is another "
                     "TPM, or something is answering in its place); run the recovery ceremony");
  }
  return srk;
}

// A session salted with the SRK (ECDH), AES-128-CFB parameter encryption in both directions.
Result<TransientHandle> start_session(Op& op, ESYS_TR salt_key, TPM2_SE type) {
  TPMT_SYM_DEF sym{};
  if (type == TPM2_SE_TRIAL) {
    sym.algorithm = TPM2_ALG_NULL;
  } else {
    sym.algorithm = TPM2_ALG_AES;
    sym.keyBits.aes = 128;
    sym.mode.aes = TPM2_ALG_CFB;
  }
  ESYS_TR s = ESYS_TR_NONE;
  op.count();
  TSS2_RC rc = Esys_StartAuthSession(op.ctx(), salt_key, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                     ESYS_TR_NONE, nullptr, type, &sym, TPM2_ALG_SHA256, &s);
  if (rc != TSS2_RC_SUCCESS) return tss_error(rc, "TPM2_StartAuthSession");
  TransientHandle session(op.ctx(), s);
  if (type != TPM2_SE_TRIAL) {
    const TPMA_SESSION attrs =
        TPMA_SESSION_CONTINUESESSION | TPMA_SESSION_DECRYPT | TPMA_SESSION_ENCRYPT;
    rc = Esys_TRSess_SetAttributes(op.ctx(), s, attrs, 0xFF);
    if (rc != TSS2_RC_SUCCESS) return tss_error(rc, "Esys_TRSess_SetAttributes");
  }
  return session;
}

// PolicyPCR over the current values of `pcrs`, then PolicyAuthValue when asked.
Status apply_policy(Op& op, ESYS_TR session, const std::vector<std::uint32_t>& pcrs,
                    bool auth_value) {
  const TPML_PCR_SELECTION sel = selection(pcrs);
  TPM2B_DIGEST current{};  // empty: the TPM takes the PCRs' present values
  op.count();
  TSS2_RC rc = Esys_PolicyPCR(op.ctx(), session, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                              &current, &sel);
  if (rc != TSS2_RC_SUCCESS) return tss_error(rc, "TPM2_PolicyPCR");
  if (auth_value) {
    op.count();
    rc = Esys_PolicyAuthValue(op.ctx(), session, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE);
    if (rc != TSS2_RC_SUCCESS) return tss_error(rc, "TPM2_PolicyAuthValue");
  }
  return Status::Ok();
}

Result<TPM2B_DIGEST> policy_digest(Op& op, const std::vector<std::uint32_t>& pcrs,
                                   bool auth_value) {
  COFFER_ASSIGN_OR_RETURN(auto trial, start_session(op, ESYS_TR_NONE, TPM2_SE_TRIAL));
  COFFER_RETURN_IF_ERROR(apply_policy(op, trial.get(), pcrs, auth_value));
  TPM2B_DIGEST* raw = nullptr;
  op.count();
  TSS2_RC rc = Esys_PolicyGetDigest(op.ctx(), trial.get(), ESYS_TR_NONE, ESYS_TR_NONE,
                                    ESYS_TR_NONE, &raw);
  EsysPtr<TPM2B_DIGEST> digest(raw);
  if (rc != TSS2_RC_SUCCESS) return tss_error(rc, "TPM2_PolicyGetDigest");
  return *digest;
}

// The operator's policy signing key as the TPM sees it: RSA-2048, exponent 65537 (encoded as 0),
// a signing key with no scheme of its own. Its name (SHA-256 of this public area) is what
// PolicyAuthorize binds; an offline signer computing the name must use the same template.
TPM2B_PUBLIC policy_key_public(const std::vector<std::uint8_t>& modulus) {
  TPM2B_PUBLIC t{};
  TPMT_PUBLIC& a = t.publicArea;
  a.type = TPM2_ALG_RSA;
  a.nameAlg = TPM2_ALG_SHA256;
  a.objectAttributes = TPMA_OBJECT_SIGN_ENCRYPT | TPMA_OBJECT_USERWITHAUTH;
  a.parameters.rsaDetail.symmetric.algorithm = TPM2_ALG_NULL;
  a.parameters.rsaDetail.scheme.scheme = TPM2_ALG_NULL;
  a.parameters.rsaDetail.keyBits = 2048;
  a.parameters.rsaDetail.exponent = 0;
  a.unique.rsa.size = static_cast<UINT16>(modulus.size());
  std::memcpy(a.unique.rsa.buffer, modulus.data(), modulus.size());
  return t;
}

// The policy signing key loaded (public part only) under the owner hierarchy: a key loaded into
// the null hierarchy gets only null tickets from VerifySignature, which PolicyAuthorize refuses.
Result<TransientHandle> load_policy_key(Op& op, const std::vector<std::uint8_t>& modulus) {
  TPM2B_PUBLIC pub = policy_key_public(modulus);
  ESYS_TR h = ESYS_TR_NONE;
  op.count();
  const TSS2_RC rc = Esys_LoadExternal(op.ctx(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, nullptr,
                                       &pub, ESYS_TR_RH_OWNER, &h);
  if (rc != TSS2_RC_SUCCESS) return tss_error(rc, "TPM2_LoadExternal (the policy signing key)");
  return TransientHandle(op.ctx(), h);
}

Result<TPM2B_NAME> handle_name(Op& op, ESYS_TR object) {
  TPM2B_NAME* raw = nullptr;
  const TSS2_RC rc = Esys_TR_GetName(op.ctx(), object, &raw);
  EsysPtr<TPM2B_NAME> name(raw);
  if (rc != TSS2_RC_SUCCESS) return tss_error(rc, "Esys_TR_GetName");
  return *name;
}

TPM2B_NONCE policy_ref(const std::string& key_id) {
  TPM2B_NONCE r{};
  r.size = static_cast<UINT16>(key_id.size());
  std::memcpy(r.buffer, key_id.data(), key_id.size());
  return r;
}

// PolicyAuthorize(keySign = the policy key's name, policyRef) [+ PolicyAuthValue]: the MK's
// authPolicy when PCR policies are signed. Computed in a trial session (which checks no ticket).
Result<TPM2B_DIGEST> authorized_policy_digest(Op& op, const std::vector<std::uint8_t>& modulus,
                                              const std::string& key_id, bool auth_value) {
  TPM2B_NAME key_name{};
  {
    COFFER_ASSIGN_OR_RETURN(auto key, load_policy_key(op, modulus));
    COFFER_ASSIGN_OR_RETURN(key_name, handle_name(op, key.get()));
  }
  COFFER_ASSIGN_OR_RETURN(auto trial, start_session(op, ESYS_TR_NONE, TPM2_SE_TRIAL));
  const TPM2B_DIGEST approved{};
  const TPM2B_NONCE ref = policy_ref(key_id);
  TPMT_TK_VERIFIED null_ticket{};
  null_ticket.tag = TPM2_ST_VERIFIED;
  null_ticket.hierarchy = TPM2_RH_NULL;
  op.count();
  TSS2_RC rc = Esys_PolicyAuthorize(op.ctx(), trial.get(), ESYS_TR_NONE, ESYS_TR_NONE,
                                    ESYS_TR_NONE, &approved, &ref, &key_name, &null_ticket);
  if (rc != TSS2_RC_SUCCESS) return tss_error(rc, "TPM2_PolicyAuthorize (trial)");
  if (auth_value) {
    op.count();
    rc = Esys_PolicyAuthValue(op.ctx(), trial.get(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE);
    if (rc != TSS2_RC_SUCCESS) return tss_error(rc, "TPM2_PolicyAuthValue (trial)");
  }
  TPM2B_DIGEST* raw = nullptr;
  op.count();
  rc = Esys_PolicyGetDigest(op.ctx(), trial.get(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &raw);
  EsysPtr<TPM2B_DIGEST> digest(raw);
  if (rc != TSS2_RC_SUCCESS) return tss_error(rc, "TPM2_PolicyGetDigest");
  return *digest;
}

Result<std::map<std::uint32_t, std::string>> read_pcrs(Op& op,
                                                       const std::vector<std::uint32_t>& pcrs) {
  std::map<std::uint32_t, std::string> out;
  for (std::uint32_t p : pcrs) {
    const TPML_PCR_SELECTION sel = selection({p});
    TPML_PCR_SELECTION* sel_out = nullptr;
    TPML_DIGEST* values = nullptr;
    UINT32 counter = 0;
    op.count();
    TSS2_RC rc = Esys_PCR_Read(op.ctx(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &sel, &counter,
                               &sel_out, &values);
    EsysPtr<TPML_PCR_SELECTION> sel_owner(sel_out);
    EsysPtr<TPML_DIGEST> values_owner(values);
    if (rc != TSS2_RC_SUCCESS) return tss_error(rc, "TPM2_PCR_Read");
    if (values == nullptr || values->count != 1) {
      return Error(Code::failed_precondition,
                   "the TPM has no sha256 bank value for PCR " + std::to_string(p) +
                       " (enable the sha256 PCR bank)");
    }
    out[p] = crypto::to_hex(crypto::ByteView(values->digests[0].buffer, values->digests[0].size));
  }
  return out;
}

// "lockout counter 1 of 32" from TPM2_PT_LOCKOUT_COUNTER / TPM2_PT_MAX_AUTH_FAIL, or "".
std::string lockout_state(Op& op) {
  TPMS_CAPABILITY_DATA* raw = nullptr;
  TPMI_YES_NO more = TPM2_NO;
  op.count();
  TSS2_RC rc = Esys_GetCapability(op.ctx(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                  TPM2_CAP_TPM_PROPERTIES, TPM2_PT_LOCKOUT_COUNTER, 2, &more,
                                  &raw);
  EsysPtr<TPMS_CAPABILITY_DATA> data(raw);
  if (rc != TSS2_RC_SUCCESS || !data) return "";
  long counter = -1;
  long max = -1;
  const auto& props = data->data.tpmProperties;
  for (UINT32 i = 0; i < props.count; ++i) {
    if (props.tpmProperty[i].property == TPM2_PT_LOCKOUT_COUNTER) counter = props.tpmProperty[i].value;
    if (props.tpmProperty[i].property == TPM2_PT_MAX_AUTH_FAIL) max = props.tpmProperty[i].value;
  }
  if (counter < 0 || max < 0) return "";
  return "the TPM's dictionary-attack counter is now " + std::to_string(counter) + " of " +
         std::to_string(max) + " failures before lockout";
}

// Whether the TPM still executes ordinary commands (not in failure mode).
bool tpm_still_working(Op& op) {
  TPM2B_DIGEST* raw = nullptr;
  op.count();
  const TSS2_RC rc = Esys_GetRandom(op.ctx(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, 8, &raw);
  EsysPtr<TPM2B_DIGEST> bytes(raw);
  return rc == TSS2_RC_SUCCESS;
}

std::string manufacturer(Op& op) {
  TPMS_CAPABILITY_DATA* raw = nullptr;
  TPMI_YES_NO more = TPM2_NO;
  op.count();
  TSS2_RC rc = Esys_GetCapability(op.ctx(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                  TPM2_CAP_TPM_PROPERTIES, TPM2_PT_MANUFACTURER, 1, &more, &raw);
  EsysPtr<TPMS_CAPABILITY_DATA> data(raw);
  if (rc != TSS2_RC_SUCCESS || !data || data->data.tpmProperties.count < 1) return "unknown";
  const UINT32 v = data->data.tpmProperties.tpmProperty[0].value;
  std::string s;
  for (int shift = 24; shift >= 0; shift -= 8) {
    const char c = static_cast<char>((v >> shift) & 0xFF);
    if (c >= 0x20 && c < 0x7F) s.push_back(c);
  }
  return s.empty() ? "unknown" : s;
}

Result<TransientHandle> load_mk(Op& op, ESYS_TR srk, const KeyBlob& blob, const std::string& path) {
  TPM2B_PUBLIC pub{};
  TPM2B_PRIVATE priv{};
  WipeOnExit<TPM2B_PRIVATE> wipe_priv(priv);
  std::size_t off = 0;
  TSS2_RC rc = Tss2_MU_TPM2B_PUBLIC_Unmarshal(blob.public_area.data(), blob.public_area.size(),
                                              &off, &pub);
  const bool pub_ok = rc == TSS2_RC_SUCCESS && off == blob.public_area.size();
  off = 0;
  rc = Tss2_MU_TPM2B_PRIVATE_Unmarshal(blob.private_area.data(), blob.private_area.size(), &off,
                                       &priv);
  if (!pub_ok || rc != TSS2_RC_SUCCESS || off != blob.private_area.size()) {
    return Error(Code::data_loss, "TPM key-blob file '" + path +
                                      "' holds no valid TPM2B_PUBLIC/TPM2B_PRIVATE (restore it)");
  }
  ESYS_TR h = ESYS_TR_NONE;
  op.count();
  rc = Esys_Load(op.ctx(), srk, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &priv, &pub, &h);
  if (rc != TSS2_RC_SUCCESS) {
    Status s = tss_error(rc, "TPM2_Load of master key '" + blob.key_id + "' from '" + path + "'");
    if (s.code() == Code::data_loss || s.code() == Code::internal) {
      return Error(Code::failed_precondition,
                   s.message() + " (this key blob was not made by this TPM's storage root key: "
                                 "wrong TPM, or the owner hierarchy was cleared; run the recovery "
                                 "ceremony)");
    }
    return s;
  }
  return TransientHandle(op.ctx(), h);
}

std::string list_of_changed(const std::vector<std::uint32_t>& changed) {
  std::string s;
  for (std::size_t i = 0; i < changed.size(); ++i) {
    if (i > 0) s += (i + 1 == changed.size()) ? " and " : ", ";
    s += std::to_string(changed[i]);
  }
  return s;
}

}  // namespace

Result<std::vector<std::uint8_t>> pcr_policy_digest(
    const std::map<std::uint32_t, std::vector<std::uint8_t>>& pcr_values) {
  if (pcr_values.empty()) return Error(Code::invalid_argument, "a PCR policy needs at least one PCR");
  std::vector<std::uint32_t> pcrs;
  std::vector<std::uint8_t> concat;
  for (const auto& [pcr, value] : pcr_values) {
    if (pcr > kMaxPcr || value.size() != 32) {
      return Error(Code::invalid_argument, "PCR " + std::to_string(pcr) +
                                               ": need a PCR 0..23 and a 32-byte sha256 value");
    }
    pcrs.push_back(pcr);
    concat.insert(concat.end(), value.begin(), value.end());
  }
  const TPML_PCR_SELECTION sel = selection(pcrs);
  std::uint8_t sel_bytes[sizeof(TPML_PCR_SELECTION)];
  std::size_t sel_len = 0;
  if (Tss2_MU_TPML_PCR_SELECTION_Marshal(&sel, sel_bytes, sizeof sel_bytes, &sel_len) !=
      TSS2_RC_SUCCESS) {
    return Error(Code::internal, "marshalling a PCR selection failed");
  }
  // policyDigest' = H(policyDigest(zeros) || TPM_CC_PolicyPCR || pcrSelection || H(PCR values))
  std::vector<std::uint8_t> in(32, 0);
  const std::uint32_t cc = TPM2_CC_PolicyPCR;
  for (int shift = 24; shift >= 0; shift -= 8) in.push_back(static_cast<std::uint8_t>(cc >> shift));
  in.insert(in.end(), sel_bytes, sel_bytes + sel_len);
  const crypto::Digest values_digest = crypto::sha256(concat);
  in.insert(in.end(), values_digest.begin(), values_digest.end());
  const crypto::Digest d = crypto::sha256(in);
  return std::vector<std::uint8_t>(d.begin(), d.end());
}

Result<std::map<std::uint32_t, std::vector<std::uint8_t>>> TpmProtector::read_pcr_values(
    const std::vector<std::uint32_t>& pcrs) {
  std::lock_guard lock(mu_);
  COFFER_ASSIGN_OR_RETURN(auto conn, EsysContext::open(config_.tcti));
  Op op{std::move(conn), ops_};
  COFFER_ASSIGN_OR_RETURN(auto hex, read_pcrs(op, pcrs));
  std::map<std::uint32_t, std::vector<std::uint8_t>> out;
  for (const auto& [pcr, value] : hex) out[pcr] = crypto::from_hex(value).value_or(std::vector<std::uint8_t>());
  return out;
}

std::string pcr_list(const std::vector<std::uint32_t>& pcrs) {
  std::string s;
  for (std::uint32_t p : pcrs) s += (s.empty() ? "" : ",") + std::to_string(p);
  return s;
}

Result<std::unique_ptr<TpmProtector>> TpmProtector::open(const TpmConfig& config,
                                                         const crypto::SecretBytes& auth_value) {
  return open(config, auth_value, SignedPcrPolicies{});
}

Result<std::unique_ptr<TpmProtector>> TpmProtector::open(const TpmConfig& in,
                                                         const crypto::SecretBytes& auth_value,
                                                         SignedPcrPolicies policies) {
  TpmConfig config = in;
  if (config.tcti.empty()) return Error(Code::invalid_argument, "protector.tpm.tcti is empty");
  if (config.key_blob_file.empty()) {
    return Error(Code::invalid_argument, "protector.tpm.key_blob_file is empty");
  }
  if (config.key_id.empty()) return Error(Code::invalid_argument, "protector.tpm.key_id is empty");
  if (config.pcrs.empty()) {
    return Error(Code::invalid_argument,
                 "protector.tpm.pcrs is empty: a master key bound to no PCR would not be bound to "
                 "the measured boot state (give e.g. [7])");
  }
  std::sort(config.pcrs.begin(), config.pcrs.end());
  if (std::adjacent_find(config.pcrs.begin(), config.pcrs.end()) != config.pcrs.end() ||
      config.pcrs.back() > kMaxPcr) {
    return Error(Code::invalid_argument,
                 "protector.tpm.pcrs must be distinct PCR numbers 0..23, got " +
                     pcr_list(config.pcrs));
  }
  if (auth_value.size() > kMaxAuthBytes) {
    return Error(Code::invalid_argument, "the TPM auth value is longer than 32 bytes");
  }
  if (!policies.policy_key_modulus.empty()) {
    if (policies.policy_key_modulus.size() != kRsaBytes || (policies.policy_key_modulus[0] & 0x80) == 0) {
      return Error(Code::invalid_argument,
                   "the TPM policy signing key must be an RSA-2048 public key (256-byte modulus)");
    }
    if (config.key_id.size() > 32) {
      return Error(Code::invalid_argument,
                   "with a policy signing key, protector.tpm.key_id (the policyRef) must be at "
                   "most 32 bytes");
    }
  }
  COFFER_ASSIGN_OR_RETURN(auto blob, read_key_blob(config.key_blob_file));
  if (blob) {
    const std::string file = "TPM key-blob file '" + config.key_blob_file + "'";
    if (blob->key_id != config.key_id) {
      return Error(Code::failed_precondition, file + " holds master key '" + blob->key_id +
                                                  "' but key_id is '" + config.key_id + "'");
    }
    if (blob->pcrs != config.pcrs) {
      return Error(Code::failed_precondition,
                   file + " is sealed to PCRs " + pcr_list(blob->pcrs) + " but the configuration "
                   "says " + pcr_list(config.pcrs) + " (fix protector.tpm.pcrs; changing the "
                   "binding needs a new master key or a signed policy)");
    }
    if (blob->policy_key_modulus != policies.policy_key_modulus) {
      return Error(Code::failed_precondition,
                   file + (blob->policy_key_modulus.empty()
                               ? " is bound to literal PCR values but a policy signing key is "
                                 "configured"
                               : policies.policy_key_modulus.empty()
                                     ? " is bound to a policy signing key (signed PCR policies) "
                                       "but none is configured"
                                     : " is bound to a different policy signing key than the "
                                       "one configured"));
    }
    if (blob->auth_value != !auth_value.empty()) {
      return Error(Code::failed_precondition,
                   file + (blob->auth_value ? " needs an auth value but none is configured (set "
                                              "protector.tpm.auth_credential)"
                                            : " has no auth value but one is configured (remove "
                                              "protector.tpm.auth_credential)"));
    }
  }
  std::atomic<std::uint64_t> probe_ops{0};
  COFFER_ASSIGN_OR_RETURN(auto conn, EsysContext::open(config.tcti));
  Op op{std::move(conn), probe_ops};
  const std::string maker = manufacturer(op);
  keys::ProtectorInfo info{
      "tpm", config.key_id, kMechanism,
      "TPM (manufacturer " + maker + ") via " + config.tcti + ", PCRs sha256:" +
          pcr_list(config.pcrs) +
          (policies.policy_key_modulus.empty() ? "" : " (signed PCR policies, PolicyAuthorize)") +
          (auth_value.empty() ? "" : " + auth value") + ", key blob " +
          config.key_blob_file};
  return std::unique_ptr<TpmProtector>(
      new TpmProtector(std::move(config), std::move(policies), auth_value.clone(),
                       std::move(info)));
}

// The key-blob file is read on every operation (a restored or removed file is seen at once); one
// replaced since open() must still be the configured key.
Status TpmProtector::still_matches(const KeyBlob& blob) const {
  if (blob.key_id != config_.key_id || blob.pcrs != config_.pcrs) {
    return Error(Code::failed_precondition,
                 "TPM key-blob file '" + config_.key_blob_file + "' changed since start-up: it "
                 "holds master key '" + blob.key_id + "' sealed to PCRs " + pcr_list(blob.pcrs) +
                 ", the configuration says '" + config_.key_id + "', PCRs " +
                 pcr_list(config_.pcrs));
  }
  return Status::Ok();
}

Status TpmProtector::create_master_key() {
  std::lock_guard lock(mu_);
  const std::string which = "master key '" + config_.key_id + "'";
  COFFER_ASSIGN_OR_RETURN(auto existing, read_key_blob(config_.key_blob_file));
  if (existing) {
    return Error(Code::already_exists,
                 which + " already exists in '" + config_.key_blob_file +
                     "'; refusing to create another (a new master key needs a new file)");
  }
  COFFER_ASSIGN_OR_RETURN(auto conn, EsysContext::open(config_.tcti));
  Op op{std::move(conn), ops_};
  TPM2B_DIGEST digest{};
  if (policies_.policy_key_modulus.empty()) {
    COFFER_ASSIGN_OR_RETURN(digest, policy_digest(op, config_.pcrs, !auth_.empty()));
  } else {
    COFFER_ASSIGN_OR_RETURN(digest, authorized_policy_digest(op, policies_.policy_key_modulus,
                                                             config_.key_id, !auth_.empty()));
  }
  COFFER_ASSIGN_OR_RETURN(auto pcr_values, read_pcrs(op, config_.pcrs));
  COFFER_ASSIGN_OR_RETURN(auto srk, create_srk(op));
  COFFER_ASSIGN_OR_RETURN(auto srk_name, object_name(op, srk.get()));
  COFFER_ASSIGN_OR_RETURN(auto session, start_session(op, srk.get(), TPM2_SE_HMAC));

  TPM2B_SENSITIVE_CREATE sens{};
  WipeOnExit<TPM2B_SENSITIVE_CREATE> wipe_sens(sens);
  if (!auth_.empty()) {
    sens.sensitive.userAuth.size = static_cast<UINT16>(auth_.size());
    std::memcpy(sens.sensitive.userAuth.buffer, auth_.data(crypto::reveal()), auth_.size());
  }
  TPM2B_PUBLIC tmpl = mk_template(digest, !auth_.empty());
  TPM2B_DATA outside{};
  TPML_PCR_SELECTION none{};
  TPM2B_PRIVATE* priv_raw = nullptr;
  TPM2B_PUBLIC* pub_raw = nullptr;
  op.count();
  // The session encrypts inSensitive (the auth value) on its way to the TPM.
  TSS2_RC rc = Esys_Create(op.ctx(), srk.get(), ESYS_TR_PASSWORD, session.get(), ESYS_TR_NONE,
                           &sens, &tmpl, &outside, &none, &priv_raw, &pub_raw, nullptr, nullptr,
                           nullptr);
  EsysPtr<TPM2B_PRIVATE> priv(priv_raw);
  EsysPtr<TPM2B_PUBLIC> pub(pub_raw);
  if (rc != TSS2_RC_SUCCESS) return tss_error(rc, "TPM2_Create of " + which);

  KeyBlob blob;
  blob.key_id = config_.key_id;
  blob.mechanism = kMechanism;
  blob.pcrs = config_.pcrs;
  blob.pcr_hex = std::move(pcr_values);
  blob.auth_value = !auth_.empty();
  blob.srk_name_hex = std::move(srk_name);
  blob.policy_key_modulus = policies_.policy_key_modulus;
  blob.public_area.resize(sizeof(TPM2B_PUBLIC));
  blob.private_area.resize(sizeof(TPM2B_PRIVATE));
  std::size_t pub_len = 0;
  std::size_t priv_len = 0;
  if (Tss2_MU_TPM2B_PUBLIC_Marshal(pub.get(), blob.public_area.data(), blob.public_area.size(),
                                   &pub_len) != TSS2_RC_SUCCESS ||
      Tss2_MU_TPM2B_PRIVATE_Marshal(priv.get(), blob.private_area.data(),
                                    blob.private_area.size(), &priv_len) != TSS2_RC_SUCCESS) {
    return Error(Code::internal, "marshalling the new " + which + " failed");
  }
  blob.public_area.resize(pub_len);
  blob.private_area.resize(priv_len);
  return write_key_blob(config_.key_blob_file, blob).with_context("creating " + which);
}

Result<bool> TpmProtector::has_master_key() {
  std::lock_guard lock(mu_);
  COFFER_ASSIGN_OR_RETURN(auto blob, read_key_blob(config_.key_blob_file));
  return blob.has_value();
}

Result<keys::WrappedKey> TpmProtector::wrap(const crypto::SecretBytes& dek) {
  if (!is_aes_key_size(dek.size())) {
    return Error(Code::invalid_argument,
                 "a key to wrap must be 16, 24 or 32 bytes, not " + std::to_string(dek.size()));
  }
  std::lock_guard lock(mu_);
  COFFER_ASSIGN_OR_RETURN(auto blob, read_key_blob(config_.key_blob_file));
  if (!blob) {
    return Error(Code::not_found, "master key '" + config_.key_id + "' not found: no key-blob "
                                  "file '" + config_.key_blob_file + "' (run cofferctl init)");
  }
  COFFER_RETURN_IF_ERROR(still_matches(*blob));
  COFFER_ASSIGN_OR_RETURN(auto conn, EsysContext::open(config_.tcti));
  Op op{std::move(conn), ops_};
  COFFER_ASSIGN_OR_RETURN(auto srk, pinned_srk(op, *blob));
  COFFER_ASSIGN_OR_RETURN(auto mk, load_mk(op, srk.get(), *blob, config_.key_blob_file));
  COFFER_ASSIGN_OR_RETURN(auto session, start_session(op, srk.get(), TPM2_SE_HMAC));

  TPM2B_PUBLIC_KEY_RSA message{};
  WipeOnExit<TPM2B_PUBLIC_KEY_RSA> wipe_message(message);
  message.size = static_cast<UINT16>(dek.size());
  std::memcpy(message.buffer, dek.data(crypto::reveal()), dek.size());
  const TPMT_RSA_DECRYPT scheme = oaep_scheme();
  const TPM2B_DATA label = oaep_label();
  TPM2B_PUBLIC_KEY_RSA* out_raw = nullptr;
  op.count();
  // RSA_Encrypt needs no authorisation; the session is there only to encrypt `message`.
  TSS2_RC rc = Esys_RSA_Encrypt(op.ctx(), mk.get(), session.get(), ESYS_TR_NONE, ESYS_TR_NONE,
                                &message, &scheme, &label, &out_raw);
  EsysPtr<TPM2B_PUBLIC_KEY_RSA> out(out_raw);
  if (rc != TSS2_RC_SUCCESS) return tss_error(rc, "TPM2_RSA_Encrypt (wrapping a key)");
  return keys::WrappedKey{kMechanism, config_.key_id,
                          std::vector<std::uint8_t>(out->buffer, out->buffer + out->size)};
}

Result<crypto::SecretBytes> TpmProtector::unwrap(const keys::WrappedKey& wrapped) {
  if (wrapped.mechanism != kMechanism) {
    return Error(Code::invalid_argument, "wrapped key uses mechanism '" + wrapped.mechanism +
                                             "', which the TPM protector does not know "
                                             "(expected " + kMechanism + ")");
  }
  if (wrapped.master_key_id != config_.key_id) {
    return Error(Code::not_found, "key was wrapped by master key '" + wrapped.master_key_id +
                                      "' but this protector uses '" + config_.key_id +
                                      "' (check protector.tpm.key_id)");
  }
  std::lock_guard lock(mu_);
  COFFER_ASSIGN_OR_RETURN(auto blob, read_key_blob(config_.key_blob_file));
  if (!blob) {
    return Error(Code::not_found, "master key '" + config_.key_id + "' not found: no key-blob "
                                  "file '" + config_.key_blob_file + "' (restore it)");
  }
  COFFER_RETURN_IF_ERROR(still_matches(*blob));
  const std::string corrupt = "wrapped key does not unwrap under TPM master key '" +
                              config_.key_id + "'";
  if (wrapped.blob.size() != kRsaBytes) {
    return Error(Code::data_loss, corrupt + ": blob of " + std::to_string(wrapped.blob.size()) +
                                      " bytes, expected " + std::to_string(kRsaBytes));
  }
  COFFER_ASSIGN_OR_RETURN(auto conn, EsysContext::open(config_.tcti));
  Op op{std::move(conn), ops_};
  COFFER_ASSIGN_OR_RETURN(auto srk, pinned_srk(op, *blob));
  // "PCR 16 changed since the key was sealed; ...": the PCRs named by comparing with the values
  // recorded when the key was sealed.
  auto pcr_error = [&](const std::string& detail) -> Status {
    std::vector<std::uint32_t> changed;
    if (auto now = read_pcrs(op, blob->pcrs); now.ok()) {
      for (std::uint32_t p : blob->pcrs) {
        auto was = blob->pcr_hex.find(p);
        if (was == blob->pcr_hex.end() || was->second != (*now)[p]) changed.push_back(p);
      }
    }
    const std::string which =
        changed.empty() ? "the PCR policy (PCRs " + pcr_list(blob->pcrs) + ") no longer matches"
        : changed.size() == 1 ? "PCR " + list_of_changed(changed) + " changed"
                              : "PCRs " + list_of_changed(changed) + " changed";
    return Error(Code::failed_precondition,
                 which + " since the key was sealed; run the recovery ceremony or restore the "
                         "measured state (TPM master key '" + config_.key_id + "', " + detail +
                         ")");
  };

  // Signed PCR policies: find the operator's approval for the present PCR values and have the
  // TPM check its signature (the ticket PolicyAuthorize needs). Done before the MK is loaded, so
  // a raw TPM's three object slots suffice (SRK + policy key, then SRK + MK).
  const bool signed_policies = !blob->policy_key_modulus.empty();
  const PcrApproval* approval = nullptr;
  TPMT_TK_VERIFIED ticket{};
  TPM2B_NAME key_name{};
  if (signed_policies) {
    // Every approval for the present values is a candidate: a forged or damaged entry must not
    // hide a genuine one later in the file.
    std::vector<const PcrApproval*> candidates;
    for (const PcrApproval& a : policies_.approvals) {
      if (a.pcrs.empty() || a.pcrs.back() > kMaxPcr || a.policy_digest.size() != 32 ||
          std::adjacent_find(a.pcrs.begin(), a.pcrs.end(), std::greater_equal<>()) !=
              a.pcrs.end()) {
        continue;
      }
      COFFER_ASSIGN_OR_RETURN(auto now, read_pcrs(op, a.pcrs));
      std::map<std::uint32_t, std::vector<std::uint8_t>> values;
      for (const auto& [pcr, hex] : now) values[pcr] = crypto::from_hex(hex).value_or(std::vector<std::uint8_t>());
      auto digest = pcr_policy_digest(values);
      if (digest.ok() && *digest == a.policy_digest) candidates.push_back(&a);
    }
    if (candidates.empty()) {
      return pcr_error("none of the " + std::to_string(policies_.approvals.size()) +
                       " PCR policies approved with the policy signing key matches the present "
                       "PCR values; if the change is legitimate, sign an approval for them");
    }
    COFFER_ASSIGN_OR_RETURN(auto key, load_policy_key(op, blob->policy_key_modulus));
    COFFER_ASSIGN_OR_RETURN(key_name, handle_name(op, key.get()));
    const std::string refused = "no approved PCR policy for the present PCR values is signed by "
                                "the policy signing key of TPM master key '" + config_.key_id +
                                "' (forged or damaged approvals; refusing to unwrap)";
    std::string last_failure;
    for (const PcrApproval* candidate : candidates) {
      std::vector<std::uint8_t> signed_bytes = candidate->policy_digest;
      signed_bytes.insert(signed_bytes.end(), config_.key_id.begin(), config_.key_id.end());
      const crypto::Digest a_hash = crypto::sha256(signed_bytes);
      TPM2B_DIGEST digest{};
      digest.size = static_cast<UINT16>(a_hash.size());
      std::memcpy(digest.buffer, a_hash.data(), a_hash.size());
      TPMT_SIGNATURE sig{};
      sig.sigAlg = TPM2_ALG_RSASSA;
      sig.signature.rsassa.hash = TPM2_ALG_SHA256;
      if (candidate->signature.size() > sizeof sig.signature.rsassa.sig.buffer) {
        last_failure = "signature too long";
        continue;
      }
      sig.signature.rsassa.sig.size = static_cast<UINT16>(candidate->signature.size());
      std::memcpy(sig.signature.rsassa.sig.buffer, candidate->signature.data(), candidate->signature.size());
      TPMT_TK_VERIFIED* validation = nullptr;
      op.count();
      const TSS2_RC rc = Esys_VerifySignature(op.ctx(), key.get(), ESYS_TR_NONE, ESYS_TR_NONE,
                                              ESYS_TR_NONE, &digest, &sig, &validation);
      EsysPtr<TPMT_TK_VERIFIED> validation_owner(validation);
      if (rc != TSS2_RC_SUCCESS) {
        if (classify(rc) == RcKind::unreachable || classify(rc) == RcKind::no_memory) {
          return tss_error(rc, "TPM2_VerifySignature (PCR policy approval)");
        }
        last_failure = rc_text(rc);
        continue;
      }
      ticket = *validation;
      approval = candidate;
      break;
    }
    if (approval == nullptr) return Error(Code::permission_denied, refused + ": " + last_failure);
  }

  COFFER_ASSIGN_OR_RETURN(auto mk, load_mk(op, srk.get(), *blob, config_.key_blob_file));
  COFFER_ASSIGN_OR_RETURN(auto session, start_session(op, srk.get(), TPM2_SE_POLICY));
  if (signed_policies) {
    COFFER_RETURN_IF_ERROR(apply_policy(op, session.get(), approval->pcrs, false));
    TPM2B_DIGEST approved{};
    approved.size = static_cast<UINT16>(approval->policy_digest.size());
    std::memcpy(approved.buffer, approval->policy_digest.data(), approval->policy_digest.size());
    const TPM2B_NONCE ref = policy_ref(config_.key_id);
    op.count();
    const TSS2_RC rc = Esys_PolicyAuthorize(op.ctx(), session.get(), ESYS_TR_NONE, ESYS_TR_NONE,
                                            ESYS_TR_NONE, &approved, &ref, &key_name, &ticket);
    if (rc != TSS2_RC_SUCCESS) {
      // The PCRs moved between reading them and PolicyPCR: the approved digest no longer matches.
      if (classify(rc) == RcKind::bad_blob || classify(rc) == RcKind::policy_failed) {
        return pcr_error("TPM2_PolicyAuthorize: " + rc_text(rc));
      }
      return tss_error(rc, "TPM2_PolicyAuthorize");
    }
    if (blob->auth_value) {
      op.count();
      const TSS2_RC rc2 =
          Esys_PolicyAuthValue(op.ctx(), session.get(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE);
      if (rc2 != TSS2_RC_SUCCESS) return tss_error(rc2, "TPM2_PolicyAuthValue");
    }
  } else {
    COFFER_RETURN_IF_ERROR(apply_policy(op, session.get(), blob->pcrs, blob->auth_value));
  }

  TPM2B_AUTH auth{};
  WipeOnExit<TPM2B_AUTH> wipe_auth(auth);
  auth.size = static_cast<UINT16>(auth_.size());
  if (!auth_.empty()) std::memcpy(auth.buffer, auth_.data(crypto::reveal()), auth_.size());
  TSS2_RC rc = Esys_TR_SetAuth(op.ctx(), mk.get(), &auth);
  if (rc != TSS2_RC_SUCCESS) return tss_error(rc, "Esys_TR_SetAuth");

  TPM2B_PUBLIC_KEY_RSA cipher{};
  cipher.size = static_cast<UINT16>(wrapped.blob.size());
  std::memcpy(cipher.buffer, wrapped.blob.data(), wrapped.blob.size());
  const TPMT_RSA_DECRYPT scheme = oaep_scheme();
  const TPM2B_DATA label = oaep_label();
  TPM2B_PUBLIC_KEY_RSA* out_raw = nullptr;
  op.count();
  rc = Esys_RSA_Decrypt(op.ctx(), mk.get(), session.get(), ESYS_TR_NONE, ESYS_TR_NONE, &cipher,
                        &scheme, &label, &out_raw);
  EsysPtr<TPM2B_PUBLIC_KEY_RSA> out(out_raw);
  // ESAPI keeps a copy of the auth value with the object; clear it before the handle goes.
  TPM2B_AUTH empty{};
  (void)Esys_TR_SetAuth(op.ctx(), mk.get(), &empty);
  if (rc != TSS2_RC_SUCCESS) {
    const RcKind kind = classify(rc);
    if (kind == RcKind::policy_failed) return pcr_error(rc_text(rc));
    if (kind == RcKind::auth_failed) {
      const std::string da = lockout_state(op);
      return Error(Code::permission_denied,
                   "the TPM refused the auth value of master key '" + config_.key_id +
                       "' (check protector.tpm.auth_credential); this failure counts toward "
                       "dictionary-attack lockout" + (da.empty() ? "" : ": " + da) + " (" +
                       rc_text(rc) + ")");
    }
    // libtpms (swtpm) answers a bad OAEP padding with TPM_RC_FAILURE instead of TPM_RC_VALUE. A
    // TPM really in failure mode refuses every command but GetTestResult/GetCapability, so one
    // GetRandom tells the two apart.
    if (rc == TPM2_RC_FAILURE && tpm_still_working(op)) {
      return Error(Code::data_loss, corrupt + ": " + rc_text(rc) +
                                        " for this blob only (the stored key is corrupt or from "
                                        "another master key)");
    }
    if (kind == RcKind::bad_blob) {
      return Error(Code::data_loss, corrupt + ": " + rc_text(rc) +
                                        " (the stored key is corrupt or from another master key)");
    }
    return tss_error(rc, "TPM2_RSA_Decrypt (unwrapping a key)");
  }
  if (!is_aes_key_size(out->size)) {
    return Error(Code::data_loss, corrupt + ": it unwrapped to an unexpected length");
  }
  COFFER_ASSIGN_OR_RETURN(auto key, crypto::SecretBytes::create_locked(out->size));
  std::memcpy(key.data(crypto::reveal()), out->buffer, out->size);
  return key;
}

Status TpmProtector::self_test() {
  const std::string what = "TPM self-test (" + info_.detail + ")";
  COFFER_RETURN_IF_ERROR(keys::round_trip_self_test(*this, what));
  std::lock_guard lock(mu_);
  COFFER_ASSIGN_OR_RETURN(auto blob, read_key_blob(config_.key_blob_file));
  if (!blob) return Error(Code::not_found, what + ": the key-blob file disappeared");
  TPM2B_PUBLIC pub{};
  std::size_t off = 0;
  if (Tss2_MU_TPM2B_PUBLIC_Unmarshal(blob->public_area.data(), blob->public_area.size(), &off,
                                     &pub) != TSS2_RC_SUCCESS) {
    return Error(Code::data_loss, what + ": the key blob's public area does not parse");
  }
  // The TPM checked on Load that this public area belongs to the key (its name binds it).
  const TPMA_OBJECT a = pub.publicArea.objectAttributes;
  const TPMA_OBJECT need =
      TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN;
  if ((a & need) != need || (a & TPMA_OBJECT_USERWITHAUTH) != 0 ||
      pub.publicArea.authPolicy.size == 0) {
    return Error(Code::failed_precondition,
                 what + ": the master key is duplicable or usable without its PCR policy "
                        "(fixedTPM/fixedParent/sensitiveDataOrigin missing or userWithAuth set); "
                        "replace it with a key created by coffer");
  }
  return Status::Ok();
}

keys::ProtectorInfo TpmProtector::describe() const { return info_; }

}  // namespace coffer::tpm
