// asio_impl.cpp: the one translation unit that compiles Boost.Asio's and Boost.Beast's
// separately-compiled sources (BOOST_*_SEPARATE_COMPILATION), so no other file pays for them.
#include <boost/asio/impl/src.hpp>
#include <boost/beast/src.hpp>
