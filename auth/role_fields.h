// Reading Vault's role fields from a request body (a JSON object): the field types of Vault's
// framework (TypeCommaStringSlice, TypeDurationSecond, TypeBool, TypeInt, TypeString) as the
// auth methods' role endpoints accept them, and role names. Shared by cert roles and AppRole so
// both read "1h", "a,b" and "true" the same way.
//
// Every reader returns nullopt when the key is absent or null, and invalid_argument naming the
// key (a message fit for a 400) when the value has the wrong type.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"

namespace coffer::auth {

// A comma-separated string or an array of strings; entries are trimmed and empty ones dropped.
Result<std::optional<std::vector<std::string>>> string_list_field(const nlohmann::json& body, const char* key);
// A number of seconds or a duration string ("1h"), see common/duration.h.
Result<std::optional<std::int64_t>> duration_field(const nlohmann::json& body, const char* key);
// A boolean, 0/1, or one of Go's strconv.ParseBool spellings.
Result<std::optional<bool>> bool_field(const nlohmann::json& body, const char* key);
// A whole number or a string of one (Vault's TypeInt accepts "5").
Result<std::optional<std::int64_t>> int_field(const nlohmann::json& body, const char* key);
Result<std::optional<std::string>> string_field(const nlohmann::json& body, const char* key);

// Old and new spellings of a token field (Vault's tokenutil.UpgradeValue): the key to read, or
// nullptr when both are given. `legacy` may be nullptr (no old spelling).
const char* pick_field(const nlohmann::json& body, const char* current, const char* legacy);

// Policy names as token_policies (or legacy policies) give them: normalised with
// PolicyStore::normalize_name, sorted, de-duplicated. nullopt when neither key is present.
Result<std::optional<std::vector<std::string>>> policies_field(const nlohmann::json& body);

// Vault's framework.GenericNameRegex: \w(([\w-.]+)?\w)?, at most 128 characters.
// Errors: invalid_argument "missing role name" / "invalid role name \"...\"".
Status validate_role_name(std::string_view name);

// "" or whitespace only -> {}; otherwise the text must be a JSON object.
// Errors: invalid_argument "the request body must be a JSON object".
Result<nlohmann::json> parse_body_text(std::string_view text);

// `s` without leading and trailing spaces, tabs and line breaks.
std::string trim_space(std::string_view s);

}  // namespace coffer::auth
