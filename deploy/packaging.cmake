# deploy/packaging.cmake: `cmake --install build` and `cpack -G DEB` (run in the build directory).
# Installs crudcast alone (component "crudcast"), never the tests, the demo backend or the bench tools:
#   bin/crudcast                                  the binary
#   lib/systemd/system/crudcast.service           the unit, ExecStart pointing at that binary
#   share/doc/crudcast/crudcast.example.yaml      every setting with its default; copy it to
#   share/doc/crudcast/README.md                  /etc/crudcast/crudcast.yaml, the unit's config
include(GNUInstallDirs)

install(TARGETS crudcast RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT crudcast)

# The unit in deploy/ names /usr/bin/crudcast and /usr/share/doc/crudcast, right for the .deb
# (prefix /usr); for any other prefix (default /usr/local) they are rewritten at install time,
# when CMAKE_INSTALL_PREFIX holds the prefix really used (cpack and --prefix change it).
set(CRUDCAST_GENERATED_UNIT ${CMAKE_CURRENT_BINARY_DIR}/install/crudcast.service)
install(CODE "
  file(READ \"${PROJECT_SOURCE_DIR}/deploy/systemd/crudcast.service\" unit)
  string(REPLACE \"/usr/bin/crudcast\" \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_BINDIR}/crudcast\" unit \"\${unit}\")
  string(REPLACE \"/usr/share/doc/crudcast\" \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_DOCDIR}\" unit \"\${unit}\")
  file(WRITE \"${CRUDCAST_GENERATED_UNIT}\" \"\${unit}\")
" COMPONENT crudcast)
install(FILES ${CRUDCAST_GENERATED_UNIT} DESTINATION lib/systemd/system COMPONENT crudcast)
install(FILES deploy/crudcast.example.yaml README.md DESTINATION ${CMAKE_INSTALL_DOCDIR} COMPONENT crudcast)

set(CPACK_PACKAGE_NAME crudcast)
set(CPACK_PACKAGE_VENDOR crudcast)
set(CPACK_PACKAGE_CONTACT "crudcast maintainers <crudcast@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "sidecar reverse proxy that publishes CRUD responses as WebSocket events")
set(CPACK_PACKAGE_DESCRIPTION "crudcast forwards HTTP requests to an API unchanged and publishes every successful
write (POST, PUT, PATCH, DELETE) as a JSON event on a WebSocket. Ships a sandboxed systemd unit
(not enabled): configure /etc/crudcast/crudcast.yaml, then systemctl enable --now crudcast.")
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
# Only the crudcast component goes into the package.
set(CPACK_INSTALL_CMAKE_PROJECTS "${CMAKE_BINARY_DIR};${PROJECT_NAME};crudcast;/")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)  # Depends from the binary's libraries, via dpkg-shlibdeps
set(CPACK_STRIP_FILES ON)
include(CPack)
