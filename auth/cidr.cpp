// CIDR parsing and containment (see cidr.h).
#include "auth/cidr.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace coffer::auth {
namespace {

Status bad(std::string_view text) {
  return Error(Code::invalid_argument, "invalid CIDR block \"" + std::string(text) + "\"");
}

// ::ffff:a.b.c.d
bool v4_mapped(const std::uint8_t* b) {
  static constexpr std::uint8_t kPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return std::memcmp(b, kPrefix, sizeof kPrefix) == 0;
}

// The first `bits` bits of a and b are equal.
bool same_prefix(const std::uint8_t* a, const std::uint8_t* b, int bits) {
  const int whole = bits / 8;
  if (std::memcmp(a, b, static_cast<std::size_t>(whole)) != 0) return false;
  const int rest = bits % 8;
  if (rest == 0) return true;
  const auto mask = static_cast<std::uint8_t>(0xff << (8 - rest));
  return (a[whole] & mask) == (b[whole] & mask);
}

}  // namespace

std::optional<CidrBlock> CidrBlock::address(std::string_view text) {
  if (text.empty() || text.size() > 64) return std::nullopt;
  const std::string s(text);
  CidrBlock b;
  in_addr a4{};
  in6_addr a6{};
  if (inet_pton(AF_INET, s.c_str(), &a4) == 1) {
    std::memcpy(b.bytes_.data(), &a4, 4);
    b.v4_ = true;
    b.prefix_ = 32;
    return b;
  }
  if (inet_pton(AF_INET6, s.c_str(), &a6) == 1) {
    if (v4_mapped(a6.s6_addr)) {
      std::memcpy(b.bytes_.data(), a6.s6_addr + 12, 4);
      b.v4_ = true;
      b.prefix_ = 32;
      return b;
    }
    std::memcpy(b.bytes_.data(), a6.s6_addr, 16);
    b.v4_ = false;
    b.prefix_ = 128;
    return b;
  }
  return std::nullopt;
}

Result<CidrBlock> CidrBlock::parse(std::string_view text) {
  const auto slash = text.find('/');
  auto block = address(text.substr(0, slash));
  if (!block) return bad(text);
  if (slash == std::string_view::npos) return *block;
  const std::string_view len = text.substr(slash + 1);
  int prefix = -1;
  auto [p, ec] = std::from_chars(len.data(), len.data() + len.size(), prefix);
  const int max = block->v4_ ? 32 : 128;
  // A mapped IPv6 form with an IPv6 prefix length ("::ffff:10.0.0.0/104") is rare enough to
  // refuse rather than translate.
  const bool mapped = block->v4_ && text.substr(0, slash).find(':') != std::string_view::npos;
  if (len.empty() || ec != std::errc() || p != len.data() + len.size() || prefix < 0 || prefix > max || mapped) {
    return bad(text);
  }
  block->prefix_ = prefix;
  // Clear the host bits.
  for (int bit = prefix; bit < max; ++bit) {
    block->bytes_[static_cast<std::size_t>(bit / 8)] &= static_cast<std::uint8_t>(~(0x80 >> (bit % 8)));
  }
  return *block;
}

bool CidrBlock::contains(const CidrBlock& inner) const {
  if (v4_ != inner.v4_) return false;
  if (inner.prefix_ < prefix_) return false;
  return same_prefix(bytes_.data(), inner.bytes_.data(), prefix_);
}

std::string CidrBlock::to_string() const {
  char buf[INET6_ADDRSTRLEN] = {};
  if (v4_) {
    inet_ntop(AF_INET, bytes_.data(), buf, sizeof buf);
  } else {
    inet_ntop(AF_INET6, bytes_.data(), buf, sizeof buf);
  }
  return std::string(buf) + "/" + std::to_string(prefix_);
}

Result<std::vector<CidrBlock>> parse_cidrs(const std::vector<std::string>& texts) {
  std::vector<CidrBlock> out;
  out.reserve(texts.size());
  for (const auto& t : texts) {
    COFFER_ASSIGN_OR_RETURN(CidrBlock b, CidrBlock::parse(t));
    out.push_back(b);
  }
  return out;
}

bool address_in(std::string_view address, const std::vector<CidrBlock>& blocks) {
  const auto a = CidrBlock::address(address);
  if (!a) return false;
  for (const auto& b : blocks) {
    if (b.contains(*a)) return true;
  }
  return false;
}

bool blocks_within(const std::vector<CidrBlock>& inner, const std::vector<CidrBlock>& outer) {
  if (outer.empty()) return true;
  for (const auto& i : inner) {
    bool inside = false;
    for (const auto& o : outer) {
      if (o.contains(i)) {
        inside = true;
        break;
      }
    }
    if (!inside) return false;
  }
  return true;
}

}  // namespace coffer::auth
