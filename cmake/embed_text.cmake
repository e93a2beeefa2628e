# embed_text.cmake: writes a text file into a C++ source as a function returning it (a raw string
# literal), so a file such as the admin live page ships inside the binary with no install step.
#   cmake -DINPUT=page.html -DOUTPUT=page.cpp -DHEADER=gateway/admin/admin_page.hpp
#         -DNAMESPACE=crudcast::gateway -DFUNCTION=admin_page_html -P embed_text.cmake
foreach(var INPUT OUTPUT HEADER NAMESPACE FUNCTION)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "embed_text.cmake: -D${var}=... is required")
  endif()
endforeach()
file(READ "${INPUT}" text)
set(delim "crudcast_embed")
string(FIND "${text}" ")${delim}\"" clash)
if(NOT clash EQUAL -1)
  message(FATAL_ERROR "embed_text.cmake: ${INPUT} contains the raw string delimiter )${delim}\"")
endif()
file(WRITE "${OUTPUT}"
  "// Generated from ${INPUT} by cmake/embed_text.cmake: edit that file, not this one.\n"
  "#include \"${HEADER}\"\n\n"
  "namespace ${NAMESPACE} {\n\n"
  "std::string_view ${FUNCTION}() {\n"
  "    static constexpr char text[] = R\"${delim}(${text})${delim}\";\n"
  "    return {text, sizeof text - 1};\n"
  "}\n\n"
  "}  // namespace ${NAMESPACE}\n")
