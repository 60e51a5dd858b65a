// CIDR blocks (IPv4 and IPv6) for source-address restrictions: AppRole's secret_id_bound_cidrs
// and a secret ID's cidr_list. Parsing follows Go's net.ParseCIDR as Vault uses it
// (parseutil.ParseAddrs): "10.0.0.0/8", "fd00::/8", and a bare address meaning /32 or /128.
// Host bits after the prefix are cleared ("10.1.2.3/8" is 10.0.0.0/8). An IPv4-mapped IPv6
// address (::ffff:10.1.2.3, as a dual-stack socket reports IPv4 peers) is treated as the IPv4
// address, so an IPv4 block matches it.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace coffer::auth {

class CidrBlock {
 public:
  // Errors: invalid_argument `invalid CIDR block "<text>"`.
  static Result<CidrBlock> parse(std::string_view text);
  // A single address as a /32 or /128 block; nullopt when `address` is not an IP address.
  static std::optional<CidrBlock> address(std::string_view address);

  // Whether every address of `inner` is in this block (an address is a /32 or /128 block).
  bool contains(const CidrBlock& inner) const;
  // Canonical text: "10.0.0.0/8", "fd00::/8".
  std::string to_string() const;

  bool ipv4() const { return v4_; }
  int prefix() const { return prefix_; }

 private:
  CidrBlock() = default;
  bool v4_ = true;
  std::array<std::uint8_t, 16> bytes_{};  // IPv4 uses the first 4
  int prefix_ = 0;
};

// Parses every entry. Errors: invalid_argument naming the first bad entry.
Result<std::vector<CidrBlock>> parse_cidrs(const std::vector<std::string>& texts);
// Whether `address` (a textual IP address) is in any of `blocks`. False for an unparseable address.
bool address_in(std::string_view address, const std::vector<CidrBlock>& blocks);
// Whether every block of `inner` lies within some block of `outer` (Vault's
// cidrutil.SubsetBlocks). An empty `outer` allows everything.
bool blocks_within(const std::vector<CidrBlock>& inner, const std::vector<CidrBlock>& outer);

}  // namespace coffer::auth
