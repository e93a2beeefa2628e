// admin_page.hpp: the admin listener's live page (GET /), gateway/admin/admin_page.html embedded in the
// binary at build time (cmake/embed_text.cmake generates the definition).
#pragma once

#include <string_view>

namespace crudcast::gateway {

std::string_view admin_page_html();

}  // namespace crudcast::gateway
