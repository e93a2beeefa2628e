# check_layering.cmake: fails the build when a product source includes from a folder it may not.
# The rule (the README's Architecture section): a folder includes only from itself and the folders before it
#   common -> config -> bus -> proxy -> gateway/events, gateway/ws, gateway/tail, gateway/auth -> gateway/admin -> gateway
# so nothing in common/, config/, bus/ or proxy/ ever includes from gateway/, the WebSocket side never
# reaches into the proxy, and the tail client knows nothing of the server.
#   cmake -DSOURCE_DIR=<repo> -DSTAMP=<file written on success> -P check_layering.cmake
set(allowed_common         common)
set(allowed_config         common config)
set(allowed_bus            common config bus)
set(allowed_proxy          common config bus proxy)
set(allowed_gateway_events common config bus proxy gateway/events)
set(allowed_gateway_ws     common config bus gateway/ws)
set(allowed_gateway_tail   common config gateway/tail)
set(allowed_gateway_auth   common config gateway/auth)
set(allowed_gateway_admin  common config bus proxy gateway/events gateway/ws gateway/admin)
set(allowed_gateway        common config bus proxy gateway)

file(GLOB_RECURSE sources RELATIVE "${SOURCE_DIR}"
     "${SOURCE_DIR}/common/*.[ch]pp" "${SOURCE_DIR}/config/*.[ch]pp" "${SOURCE_DIR}/bus/*.[ch]pp"
     "${SOURCE_DIR}/proxy/*.[ch]pp" "${SOURCE_DIR}/gateway/*.[ch]pp")
set(violations "")
foreach(source IN LISTS sources)
  get_filename_component(folder "${source}" DIRECTORY)
  string(REPLACE "/" "_" key "${folder}")
  if(NOT DEFINED allowed_${key})
    string(APPEND violations "  ${source}: folder ${folder} has no row in cmake/check_layering.cmake\n")
    continue()
  endif()
  file(STRINGS "${SOURCE_DIR}/${source}" includes REGEX "^[ \t]*#[ \t]*include[ \t]*\"")
  foreach(line IN LISTS includes)
    string(REGEX REPLACE "^[ \t]*#[ \t]*include[ \t]*\"([^\"]*)\".*" "\\1" target "${line}")
    get_filename_component(target_folder "${target}" DIRECTORY)
    set(ok FALSE)
    foreach(prefix IN LISTS allowed_${key})
      # gateway/ itself may include every gateway subfolder; the others only their own.
      if(target_folder STREQUAL prefix OR (prefix STREQUAL "gateway" AND target_folder MATCHES "^gateway(/|$)"))
        set(ok TRUE)
      endif()
    endforeach()
    if(NOT ok)
      string(REPLACE ";" ", " allowed_text "${allowed_${key}}")
      string(APPEND violations "  ${source} includes \"${target}\": ${folder}/ may include only ${allowed_text}\n")
    endif()
  endforeach()
endforeach()
if(violations)
  message(FATAL_ERROR "include layering violated (see the README's Architecture section):\n${violations}")
endif()
file(TOUCH "${STAMP}")
