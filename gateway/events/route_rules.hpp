// route_rules.hpp: the route rules the event mapper matches, under the names gateway/events uses.
// They are compiled (and validated) in config/route_rules.hpp, so a bad template is a config error.
#pragma once

#include "config/route_rules.hpp"

namespace crudcast::gateway {

using config::CompiledRule;
using config::path_segments;
using config::RouteTable;

}  // namespace crudcast::gateway
