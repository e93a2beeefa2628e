// nats_broker.hpp: the naming rules of the NATS JetStream broker client (bus/nats_broker.cpp), pure
// and table-tested: the deployment's stream name, and how a model becomes one subject token and back.
// The client itself is make_nats_client in broker.hpp.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace crudcast::bus::nats {

// The stream of a deployment: the prefix upper-cased, every byte outside [A-Za-z0-9_-] made '_'
// ("crudcast" -> "CRUDCAST", "team.a" -> "TEAM_A"); JetStream refuses '.', '*', '>' and spaces in a name.
std::string stream_name(std::string_view prefix);

// A model as one subject token. Models come from URL paths, so anything can be in them: '.', '*',
// '>', '%', bytes <= 0x20 (space, controls) and >= 0x7f become %XX (upper-case hex), which keeps the
// token a valid one and the mapping reversible. The empty model, which no token can be, is "%".
std::string subject_token(std::string_view model);

// The model a token came from; nullopt when the token is no subject_token output (a foreign
// writer's subject), e.g. "%4" or "%zz".
std::optional<std::string> model_from_token(std::string_view token);

// Whether `prefix` can start subjects: non-empty tokens separated by '.', no wildcard, no byte <= 0x20.
bool valid_subject_prefix(std::string_view prefix);

}  // namespace crudcast::bus::nats
