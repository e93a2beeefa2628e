// boost_impl.cpp: the one translation unit that compiles the separately-compiled sources of
// Boost.Asio, Boost.Beast (BOOST_*_SEPARATE_COMPILATION) and Boost.URL, so no other file pays for them.
#include <boost/asio/impl/src.hpp>
#include <boost/beast/src.hpp>
#include <boost/url/src.hpp>
