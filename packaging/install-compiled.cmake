# At install, after the Lua tree is in place: compiles the installed tree,
# and lua-argparse, for the place it is installed to (packaging/compile.lua),
# and lists the copies in the install manifest, for make uninstall.
# KAPI_EXECUTABLE, KAPI_COMPILE_SCRIPT, KAPI_LIBDIR and KAPI_DATADIR are set
# by the install(CODE) before this script.
set(_root "$ENV{DESTDIR}")
set(_compiled "${CMAKE_INSTALL_PREFIX}/${KAPI_LIBDIR}/kapi/compiled")
set(_tree "${CMAKE_INSTALL_PREFIX}/${KAPI_DATADIR}/kapi")
file(REMOVE_RECURSE "${_root}${_compiled}")
execute_process(
  COMMAND "${KAPI_EXECUTABLE}" "${KAPI_COMPILE_SCRIPT}" "${_root}${_compiled}" "${_root}${_tree}" "${_tree}"
          --module argparse
  COMMAND_ERROR_IS_FATAL ANY)
file(GLOB_RECURSE _copies LIST_DIRECTORIES false "${_root}${_compiled}/*")
string(LENGTH "${_root}" _root_length)
foreach(_copy IN LISTS _copies)
  string(SUBSTRING "${_copy}" ${_root_length} -1 _installed)
  list(APPEND CMAKE_INSTALL_MANIFEST_FILES "${_installed}")
endforeach()
message(STATUS "Compiled: ${_compiled}")
